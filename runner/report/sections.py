"""The sign-off report's sections that state what was agreed and achieved: identity,
executive summary, totals, exceptions and the sign-off block (each returns HTML)."""

from __future__ import annotations

from runner import __version__
from runner.report import fmt
from runner.report.census import source_sentence
from runner.report.collect import ReportData
from runner.report.markup import Col, key_values, para, table, tag, text
from runner.report.model import Headline, Total

SIGNATORIES = ("PACS manager", "Migration consultant", "Clinical lead")
DIMENSIONS = (("phase", "By phase"), ("tier", "By storage tier"),
              ("modality", "By modality"), ("year", "By study year"))


def header_section(data: ReportData) -> str:
    """Title, scope and identity: site, profile file and hash, runner, ledger time span."""
    ident = data.identity
    scope_cls = "scope" if ident.scope.is_everything else "scope interim"
    parts = [tag("h1", "PACS migration sign-off report"),
             para(f"{ident.site_name}: {ident.source_name} to {ident.destination_name}",
                  "subtitle"),
             tag("div", text(f"Scope: {ident.scope.describe()}"), scope_cls),
             tag("h2", "Identity"), key_values(_identity_pairs(data)), _runs(data)]
    if ident.method:
        parts += [tag("h2", "Scope and method"), key_values(list(ident.method))]
    return tag("section", "".join(parts))


def _identity_pairs(data: ReportData) -> list[tuple[str, object]]:
    ident, span = data.identity, data.span
    versions = sorted({run.runner_version for run in data.runs})
    masking = ("masked: studies are shown by UID and pseudonym only, accession numbers "
               "(reconciliation.csv) by their last four characters" if ident.masked else
               "not masked: the ledger holds no patient data, studies are shown by UID, "
               "accession numbers in reconciliation.csv as recorded")
    return [
        ("Site", f"{ident.site_name} (id {ident.site_id})"),
        ("Source PACS", ident.source_name),
        ("Destination", ident.destination_name),
        ("Profile file", ident.profile_path),
        ("Profile SHA-256", ident.profile_sha256),
        ("Runner", f"pacsmig {__version__} wrote this report; the ledger was written by "
                   f"{', '.join(versions) or 'no run yet'}"),
        ("Ledger", ident.ledger_path),
        ("Ledger time span", f"{fmt.when(span.first_at)} to {fmt.when(span.last_at)} "
                             f"({ident.timezone})"),
        ("Report generated", f"{fmt.when(ident.generated_at)} ({ident.timezone})"),
        ("Patient identifiers", masking),
    ]


def _runs(data: ReportData) -> str:
    if not data.runs:
        return para("No run has been recorded in this ledger yet.", "empty")
    current = data.identity.profile_sha256
    changed = any(run.profile_sha256 != current for run in data.runs)
    note = para("The profile file changed during the migration: the runs below used the "
                "versions whose SHA-256 is listed.", "verdict bad") if changed else ""
    cols = [Col("Profile SHA-256", "uid", "40%"), Col("Runner"), Col("Runs", "num"),
            Col("First started"), Col("Last ended")]
    rows = [[run.profile_sha256, run.runner_version, fmt.count(run.runs),
             fmt.when(run.first_started),
             fmt.when(run.last_ended) + (" (unfinished)" if run.unfinished_runs else "")]
            for run in data.runs]
    return tag("h3", "Runs recorded in the ledger") + note + table(cols, rows, "small")


def summary_section(data: ReportData) -> str:
    """Studies, instances and GB planned, migrated and verified; what is outstanding."""
    head = data.headline
    cols = [Col("", width="13%"), Col("Planned", "num"), Col("Received by the runner", "num"),
            Col("Migrated (stored at destination)", "num"), Col("Verified", "num"),
            Col("Verified share", "num")]
    rows = [
        ["Studies", fmt.count(head.planned_studies), fmt.count(head.received_studies),
         fmt.count(head.migrated_studies), fmt.count(head.verified_studies),
         fmt.percent(head.verified_studies, head.planned_studies)],
        ["Instances", fmt.count(head.planned_instances), fmt.count(head.received_instances),
         fmt.count(head.migrated_instances), fmt.count(head.verified_instances),
         fmt.percent(head.verified_instances, head.planned_instances)],
        ["Data (GB)", fmt.decimal(head.planned_gb), fmt.decimal(head.received_gb),
         fmt.decimal(head.migrated_gb), fmt.decimal(head.verified_gb), ""],
    ]
    parts = [tag("h2", "Executive summary"), _verdict(data), table(cols, rows),
             para(_summary_note(head), "note"), _statuses(data)]
    return tag("section", "".join(parts))


def _verdict(data: ReportData) -> str:
    head = data.headline
    return para(source_sentence(head), "headline") + _planned_verdict(data)


def _planned_verdict(data: ReportData) -> str:
    head = data.headline
    if head.planned_studies == 0:
        return para("No studies are planned in this scope: there is nothing to sign off.",
                    "verdict bad")
    if head.outstanding_studies == 0:
        return para("Every planned study of the source is verified at the destination: "
                    f"{fmt.plural(head.verified_studies, 'study', 'studies')}, "
                    f"{fmt.plural(head.verified_instances, 'instance', 'instances')}.",
                    "verdict ok")
    why = ", ".join(f"{s.studies:,} {s.status.replace('_', ' ')}" for s in data.statuses
                    if s.status != "verified")
    return para(f"Not verified: {head.outstanding_studies:,} of "
                f"{fmt.plural(head.planned_studies, 'planned study', 'planned studies')} "
                f"({why}); each is listed under Exceptions with its reason.", "verdict bad")


def _summary_note(head: Headline) -> str:
    note = ("Planned counts come from the source's inventory. A study counts as migrated "
            "when at least one of its instances was stored at the destination, as verified "
            "when the destination confirmed all of them. GB = 10^9 bytes; planned GB are "
            "the inventory's estimates, the others bytes actually received.")
    if head.unknown_size_studies:
        note += (f" {fmt.plural(head.unknown_size_studies, 'study', 'studies')} had no "
                 "instance count in the inventory: counted with what their retrieves "
                 "reported, if any.")
    return note


def _statuses(data: ReportData) -> str:
    cols = [Col("Status"), Col("Studies", "num"), Col("Source instances", "num"),
            Col("At destination", "num"), Col("Planned GB", "num")]
    rows = [[s.status.replace("_", " "), fmt.count(s.studies), fmt.count(s.source_instances),
             fmt.count(s.destination_instances), fmt.decimal(s.planned_gb)]
            for s in data.statuses]
    if not rows:
        return ""
    return tag("h3", "Studies by reconciliation status") + table(cols, rows, "small")


def totals_section(data: ReportData) -> str:
    """Totals per phase, tier, modality and study year."""
    parts = [tag("h2", "Totals")]
    if not data.totals:
        parts.append(para("No totals: no study is planned in this scope.", "empty"))
    for dimension, title in DIMENSIONS:
        rows = [t for t in data.totals if t.dimension == dimension]
        if rows:
            parts += [tag("h3", title), _totals_table(dimension, rows)]
    return tag("section", "".join(parts))


def _totals_table(dimension: str, totals: list[Total]) -> str:
    cols = [Col(dimension.capitalize(), width="16%"),
            *(Col(title, "num", "12%") for title in (
                "Studies", "Verified", "Outstanding", "Planned instances", "At destination",
                "Planned GB", "Received GB"))]
    rows = [[t.key, fmt.count(t.studies), fmt.count(t.verified_studies),
             fmt.count(t.outstanding_studies), fmt.count(t.planned_instances),
             fmt.count(t.destination_instances), fmt.decimal(t.planned_gb),
             fmt.decimal(t.received_gb)] for t in totals]
    return table(cols, rows, "small")


def exceptions_section(data: ReportData) -> str:
    """Every study not verified, with its reason and attempts; the series the runner saw."""
    count = data.headline.outstanding_studies
    parts = [tag("h2", f"Exceptions: {fmt.plural(count, 'study', 'studies')} not verified")]
    if count == 0:
        parts.append(para("No exceptions: every planned study was verified."
                          if data.headline.planned_studies else
                          "No exceptions: no study is planned in this scope.", "empty"))
        return tag("section", "".join(parts), "major")
    parts += [para("Instances: source / received by the runner / at the destination. "
                   "Tries: retrieves sent for the study (re-dates not counted).", "note"),
              _exceptions_table(data), _pending_left_out(data), _series(data)]
    return tag("section", "".join(parts), "major")


def _exceptions_table(data: ReportData) -> str:
    cols = [Col("Pseudonym and study UID", "uid", "33%"), Col("Status", width="11%"),
            Col("Study", width="15%"), Col("Instances", "num", "11%"),
            Col("Tries", "num", "6%"), Col("Reason", width="24%")]
    rows = [[f"{e.pseudonym}\n{e.study_uid}", e.status.replace("_", " "),
             f"{e.modality}, {e.study_date or 'no date'}, {e.tier}, phase {e.phase}",
             f"{fmt.count(e.source_instances)} / {fmt.count(e.received_instances)} / "
             f"{fmt.count(e.destination_instances)}", fmt.count(e.attempts), e.reason]
            for e in data.exceptions]
    return table(cols, rows, "small")


def _pending_left_out(data: ReportData) -> str:
    left_out = data.headline.outstanding_studies - len(data.exceptions)
    if left_out <= 0:
        return ""
    return para(f"{fmt.plural(left_out, 'more study', 'more studies')} not started yet "
                "(pending) are not listed here: reconciliation.csv lists every study with "
                "its status.", "verdict bad")


def _series(data: ReportData) -> str:
    if not data.series:
        return para("The runner received no instance of these studies, so no series is "
                    "known for them.", "note")
    cols = [Col("Pseudonym and series UID", "uid", "48%"), Col("Received", "num"),
            Col("Stored", "num"), Col("Confirmed", "num"), Col("Set aside", "num")]
    rows = [[f"{s.pseudonym}\n{s.series_uid}", fmt.count(s.received_instances),
             fmt.count(s.stored_instances), fmt.count(s.verified_instances),
             fmt.count(s.quarantined_instances)] for s in data.series]
    more = data.series_total - len(data.series)
    note = para(f"{more:,} more series are listed in reconciliation_series.csv.",
                "note") if more > 0 else ""
    return tag("h3", "Series of these studies, as received") + table(cols, rows, "small") + note


def signoff_section(data: ReportData) -> str:
    """The declaration and the signature lines."""
    head, ident = data.headline, data.identity
    declaration = (
        f"We have reviewed this report of the migration of {ident.site_name} from "
        f"{ident.source_name} to {ident.destination_name} ({ident.scope.describe()}). "
        f"{source_sentence(head)} "
        f"{head.verified_studies:,} of "
        f"{fmt.plural(head.planned_studies, 'planned study', 'planned studies')} "
        f"({fmt.plural(head.verified_instances, 'instance', 'instances')}) verified at the "
        f"destination; exceptions listed with their reasons: "
        f"{head.outstanding_studies:,}. We accept them or have agreed how each will be "
        "resolved.")
    cols = [Col("Role", width="22%"), Col("Name", width="28%"), Col("Signature", width="32%"),
            Col("Date", width="18%")]
    rows = "".join(f'<tr><td>{text(role)}</td><td class="line"></td><td class="line"></td>'
                   '<td class="line"></td></tr>' for role in SIGNATORIES)
    head_row = "".join(f"<th>{text(c.title)}</th>" for c in cols)
    widths = "".join(f'<col style="width:{c.width}">' for c in cols)
    signatures = (f'<table class="signature fixed"><colgroup>{widths}</colgroup><thead><tr>'
                  f"{head_row}</tr></thead><tbody>{rows}</tbody></table>")
    parts = [tag("h2", "Sign-off"), tag("div", para(declaration), "declaration"),
             para(f"Profile SHA-256: {ident.profile_sha256}", "note"), signatures,
             tag("h3", "Conditions and comments"),
             '<div class="declaration" style="height:40mm"></div>']
    return tag("section", "".join(parts), "major")
