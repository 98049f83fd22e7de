"""The sign-off report's census section: what the old PACS holds, how that was found out,
what is planned and what is excluded and why, and each catch-up sync (returns HTML)."""

from __future__ import annotations

from runner.report import fmt
from runner.report.collect import ReportData
from runner.report.markup import Col, para, table, tag
from runner.report.model import CensusRow, Headline


def source_sentence(head: Headline) -> str:
    """The headline: the source's count, then what became of its studies."""
    instances = fmt.plural(head.source_instances, "instance", "instances")
    unknown = (f", and {fmt.plural(head.source_unknown_counts, 'study', 'studies')} of "
               "unknown count" if head.source_unknown_counts else "")
    not_yet = head.planned_studies - head.verified_studies
    parts = [f"The source holds {fmt.plural(head.source_studies, 'study', 'studies')} "
             f"({instances}{unknown}): {head.planned_studies:,} planned, "
             f"{head.excluded_studies:,} excluded with their reasons; "
             f"{head.verified_studies:,} verified at the destination, {not_yet:,} not yet "
             "verified."]
    if head.gone_studies:
        parts.append(f"{fmt.plural(head.gone_studies, 'study', 'studies')} the source held "
                     "earlier are no longer there (deleted or merged at the source).")
    if head.uncensused_studies:
        shown = fmt.plural(head.uncensused_studies, "planned study was",
                           "planned studies were")
        parts.append(f"{shown} not found by any census of the source.")
    return " ".join(parts)


def census_section(data: ReportData) -> str:
    """How the census was taken and what it found; exclusions by reason; the syncs."""
    parts = [tag("h2", "Census of the source")]
    if not data.censuses:
        parts.append(para("No census is recorded in this ledger: the counts above are the "
                          "plan's, not the source's.", "verdict bad"))
        return tag("section", "".join(parts))
    latest = data.censuses[-1]
    parts.append(para(_latest(latest), "verdict ok" if latest.complete and latest.of_source
                      else "verdict bad"))
    parts += _exclusions(data)
    parts += _totals(data)
    cols = [Col("Taken"), Col("By"), Col("Studies", "num"), Col("Instances", "num"),
            Col("Planned", "num"), Col("Excluded", "num"), Col("New", "num"),
            Col("Changed", "num"), Col("Gone", "num"), Col("Received after", "num")]
    rows = [[fmt.when(c.taken_at), c.command + ("" if c.complete else " (incomplete)"),
             fmt.count(c.studies), fmt.count(c.instances), fmt.count(c.planned),
             fmt.count(c.excluded), _maybe(c.new_studies), _maybe(c.changed_studies),
             _maybe(c.gone_studies), fmt.count(c.received_after)] for c in data.censuses]
    parts += [tag("h3", "Censuses and catch-up syncs"), table(cols, rows, "small"),
              para("New, changed and gone: what each sync found against the census before "
                   "it (a changed study holds more or fewer instances than before). Received "
                   "after: instances the run that followed the census received.", "note")]
    return tag("section", "".join(parts))


def _latest(c: CensusRow) -> str:
    who = "the source" if c.of_source else "an inventory CSV (not the source itself)"
    text = (f"Latest census: {fmt.when(c.taken_at)}, of {who}: {c.method}; "
            f"{c.queries:,} queries; {fmt.plural(c.studies, 'study', 'studies')}.")
    if c.cap:
        text += (f" The source answers at most {c.cap:,} studies per query without saying "
                 "so: the census split every query that reached it.")
    if not c.complete:
        text += (f" INCOMPLETE: {fmt.plural(c.gaps, 'query was', 'queries were')} not "
                 "answered fully; the source may hold studies not counted here.")
    return text


def _exclusions(data: ReportData) -> list[str]:
    if not data.exclusions:
        return [para("No study of the source is excluded.", "note")]
    cols = [Col("Excluded because", width="60%"), Col("Studies", "num"),
            Col("Instances", "num")]
    rows = [[e.reason, fmt.count(e.studies), fmt.count(e.instances)] for e in data.exclusions]
    return [tag("h3", "Excluded studies, by reason"), table(cols, rows, "small"),
            para("reconciliation.csv lists each excluded study with its reason in words.",
                 "note")]


def _totals(data: ReportData) -> list[str]:
    parts: list[str] = []
    cols = [Col("", width="22%"), Col("Studies", "num"), Col("Instances", "num"),
            Col("Unknown count", "num"), Col("Planned", "num"), Col("Excluded", "num"),
            Col("Verified", "num")]
    for dimension, title in (("tier", "tier"), ("modality", "modality"), ("year", "study year")):
        rows = [[t.key, fmt.count(t.studies), fmt.count(t.instances),
                 fmt.count(t.unknown_counts), fmt.count(t.planned), fmt.count(t.excluded),
                 fmt.count(t.verified)]
                for t in data.census_totals if t.dimension == dimension]
        if rows:
            parts += [tag("h3", f"What the source holds, by {title}"),
                      table(cols, rows, "small")]
    return parts


def _maybe(value: int | None) -> str:
    return "" if value is None else fmt.count(value)
