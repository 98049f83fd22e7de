"""The sign-off report's "What changed in the data" section: each morphing rule in words with
the number of instances it changed, the transcodes the runner made
(from, to, how many), the conflicts found at the destination and their resolution, and the
kinds of object it carried (SOP classes and transfer syntaxes
by count, private classes named as such), so that a trust signs off knowing what was altered
and what was carried as it was."""

from __future__ import annotations

from pydicom.uid import UID

from runner.report import fmt
from runner.report.collect import ReportData
from runner.report.markup import Col, para, table, tag
from runner.report.model import (
    ConflictRow,
    ObjectKind,
    RuleCount,
    SampleCheck,
    TranscodeCount,
)

CONFLICTS_SHOWN = 200


def changes_section(data: ReportData) -> str:
    """Transcodes, then the object kinds carried."""
    parts = [tag("h2", "What changed in the data"), tag("h3", "Morphing rules"),
             _rules(data.identity.rules, data.rule_counts), tag("h3", "Transcodes"),
             _transcodes(data.transcodes), tag("h3", "Conflicts at the destination"),
             _conflicts(data.conflicts), tag("h3", "Read back from the destination (sample)"),
             _samples(data.sample_checks), tag("h3", "Kinds of object carried"),
             _kinds(data.object_kinds)]
    return tag("section", "".join(parts))


def syntax_name(uid: str) -> str:
    """A transfer syntax or SOP class by name (its UID when it has none), private marked."""
    known = UID(uid)
    name = str(known.name)
    if name == uid:
        return f"{uid} (private)" if known.is_private else uid
    return name


def _rules(rules: tuple[str, ...], counts: list[RuleCount]) -> str:
    if not rules and not counts:
        return para("None: the profile has no morphing rule; every instance was sent with "
                    "the attributes the source holds.", "empty")
    changed = {c.rule_index: c.instances for c in counts}
    note = para("Each rule of the profile in words, and how many of the instances stored at "
                "the destination it changed (from the ledger; the rules are the profile's "
                "as it is now).", "note")
    cols = [Col("#", "num", "6%"), Col("Rule", width="74%"),
            Col("Instances changed", "num", "20%")]
    rows = [[str(index + 1), words, fmt.count(changed.get(index, 0))]
            for index, words in enumerate(rules)]
    rows += [[str(index + 1), "(a rule no longer in the profile)", fmt.count(count)]
             for index, count in sorted(changed.items()) if index >= len(rules)]
    return note + table(cols, rows, "small")


def _transcodes(rows: list[TranscodeCount]) -> str:
    if not rows:
        return para("None: every instance stored went in the transfer syntax the source "
                    "sent it in.", "empty")
    total = sum(r.instances for r in rows)
    note = para(f"{fmt.plural(total, 'instance was', 'instances were')} stored in another "
                "transfer syntax than received, because the destination refused the one "
                "received. Every transcode is lossless: the pixel data was decoded and "
                "stored uncompressed, the SOP Instance UID and every other attribute kept; "
                "an instance that could not be sent losslessly is an exception instead.",
                "note")
    cols = [Col("Received as", width="38%"), Col("Stored as", width="32%"),
            Col("Instances", "num", "15%"), Col("Studies", "num", "15%")]
    return note + table(cols, [[syntax_name(r.transcoded_from), syntax_name(r.transcoded_to),
                                fmt.count(r.instances), fmt.count(r.studies)]
                               for r in rows], "small")


def _conflicts(rows: list[ConflictRow]) -> str:
    if not rows:
        return para("None: the destination held nothing under the studies' UIDs that "
                    "disagreed with the source.", "empty")
    note = para(f"{fmt.plural(len(rows), 'conflict', 'conflicts')} found before sending "
                "(destination.conflicts): the same SOP Instance UID in another series or "
                "another study, or the study under another Patient ID (the IDs are "
                "compared, never shown).",
                "note")
    cols = [Col("Pseudonym and study UID", "uid", "30%"), Col("Conflict", width="45%"),
            Col("Resolution", width="25%")]
    more = len(rows) - CONFLICTS_SHOWN
    tail = para(f"{more:,} more conflicts are in the ledger (events of kind 'conflict').",
                "note") if more > 0 else ""
    return note + table(cols, [[f"{r.pseudonym}\n{r.study_uid}", r.conflict, r.resolution]
                               for r in rows[:CONFLICTS_SHOWN]], "small") + tail


def _samples(rows: list[SampleCheck]) -> str:
    if not rows:
        return para("No sample was read back (destination.verify_sample, then pacsmig "
                    "verify).", "empty")
    agreed = sum(1 for r in rows if r.ok)
    different = [r for r in rows if r.ok is False]
    unknown = len(rows) - agreed - len(different)
    verdict = "verdict ok" if agreed == len(rows) else "verdict bad"
    summary = para(f"{fmt.plural(len(rows), 'instance was', 'instances were')} read back "
                   f"from the destination and from the source and compared (every "
                   f"attribute, and the pixel data): {agreed:,} as sent, "
                   f"{len(different):,} different, {unknown:,} could not be compared.",
                   verdict)
    shown = [r for r in rows if not r.ok][:CONFLICTS_SHOWN]
    if not shown:
        return summary
    cols = [Col("Pseudonym and SOP Instance UID", "uid", "40%"),
            Col("What differs", width="60%")]
    return summary + table(cols, [[f"{r.pseudonym}\n{r.sop_instance_uid}",
                                   r.differences or "not compared"] for r in shown], "small")


def _kinds(rows: list[ObjectKind]) -> str:
    if not rows:
        return para("No instance received yet.", "empty")
    private = sorted({r.sop_class_uid for r in rows if UID(r.sop_class_uid).is_private})
    note = para(f"{fmt.plural(len(private), 'private SOP class', 'private SOP classes')} "
                f"carried{': ' + ', '.join(private) if private else ''}.", "note")
    cols = [Col("SOP class", width="40%"), Col("Transfer syntax received", width="34%"),
            Col("Instances", "num", "13%"), Col("Stored", "num", "13%")]
    return note + table(cols, [[syntax_name(r.sop_class_uid), syntax_name(r.transfer_syntax),
                                fmt.count(r.instances), fmt.count(r.stored_instances)]
                               for r in rows], "small")
