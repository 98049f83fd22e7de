"""Reconciliation and sign-off reports, computed by SQL (sql/*.sql) from the closed ledger.

`report_command` (commands.py) writes into `reports.dir`: `reconciliation.csv` (the spec's
columns), `reconciliation.parquet` (the same first, then analyst columns),
`reconciliation_series.csv` (per series received) and `signoff.html` (one self-contained
page for A4). An interim report (`--from/--to` study dates, `--phase` counted from 1) writes
the same files with its scope in their names, e.g. `signoff-phase2-from2019-01-01.html`.
A wave is planned by study date, so the dates filter on the study date, not receipt time.

Modules: `scope` (the filter), `source` (read-only connection, SQL files, scope tables),
`model` (typed rows), `collect` (every section's data), `chart` (inline SVG), `fmt`
(numbers for people), `markup` (escaping HTML builders), `sections` and `operations` (the
HTML sections), `render` (the page), `files` (atomic CSV/Parquet/HTML writes).

Privacy: studies are named by UID and a pseudonym (first 10 hex digits of SHA-256 of
"<site id>:<study UID>", stable per site). The ledger stores no patient name, ID or birth
date, so no report can show one. It stores each study's Accession Number before and after
the rules (for matching against the RIS), masked to its last four characters unless the
profile said `mask_identifiers: false` when the census was recorded; a report with
`mask_identifiers` masks them again (a masked number stays as it is).
"""
