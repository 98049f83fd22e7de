"""Reconciliation and sign-off reports, computed by SQL (sql/*.sql) from the ledger.

`report_command` (commands.py) writes `reconciliation.csv`, `reconciliation.parquet`,
`reconciliation_series.csv` and `signoff.html` into `reports.dir`. Modules: `scope` (the
filter: a wave by study date and phase), `source` (a read-only connection and the SQL
files), `model` (the typed rows), `collect` (every section's data), `chart` (inline SVG),
`fmt` (numbers for people), `render` (the HTML), `files` (CSV and Parquet exports).

Privacy: studies are named by UID and a pseudonym (first 10 hex digits of SHA-256 of
"<site id>:<study UID>", stable per site). The ledger stores no patient name, ID, birth date
or accession number, so no report can show one: with `mask_identifiers: false` the reports
are the same, since there is no patient ID column in the ledger to reveal.
"""
