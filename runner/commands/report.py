"""`pacsmig report`: the reconciliation files and the sign-off report, from the ledger
(runner.report computes and renders them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from runner import __version__
from runner.errors import InputError, problem_at
from runner.ledger import LEDGER_FILENAME
from runner.morph.loaded import LoadedProfile, load_profile
from runner.morph.ruleset import RuleSet
from runner.profile.models import SiteProfile
from runner.report.collect import Identity, ReportData, collect
from runner.report.files import export_tables, write_text
from runner.report.render import render_signoff
from runner.report.scope import ReportScope
from runner.report.source import LedgerReader


@dataclass(frozen=True, slots=True)
class ReportResult:
    """What `report_command` wrote and the headline numbers (GB = 10^9 bytes)."""

    files: tuple[Path, ...]
    scope: ReportScope
    planned_studies: int
    verified_studies: int
    planned_instances: int
    destination_instances: int
    verified_gb: float

    @property
    def not_verified(self) -> int:
        """Studies in scope that are not verified."""
        return self.planned_studies - self.verified_studies

    @property
    def discrepancies(self) -> bool:
        """Whether any study in scope is not verified (the CLI then exits 1)."""
        return self.not_verified > 0

    def lines(self) -> list[str]:
        """The outcome for a person."""
        return [*(f"Wrote {path}" for path in self.files),
                f"Scope: {self.scope.describe()}",
                f"Studies: {self.verified_studies:,} of {self.planned_studies:,} verified, "
                f"{self.not_verified:,} not verified; instances at the destination: "
                f"{self.destination_instances:,} of {self.planned_instances:,} planned"]


def report(profile: Path, date_from: date | None, date_to: date | None, phase: int | None,
           echo: Callable[[str], None]) -> int:
    """Write the reports; exit code 1 when a study in scope is not verified."""
    result = report_command(load_profile(profile), date_from=date_from, date_to=date_to,
                            phase=phase, write=echo)
    return 1 if result.discrepancies else 0


def report_command(loaded: LoadedProfile, *, date_from: date | None, date_to: date | None,
                   phase: int | None, write: Callable[[str], None]) -> ReportResult:
    """Write the reports for the whole migration or one wave (study dates, 1-based phase)
    into `reports.dir`; an interim report's files carry its scope in their names."""
    scope = ReportScope(date_from, date_to, phase)
    problem = scope.problem()
    if problem:
        raise InputError([problem_at(loaded.path, problem)])
    folder = loaded.profile.reports.dir
    suffix = scope.file_suffix()
    with LedgerReader.open(folder / LEDGER_FILENAME, loaded.profile.site.timezone) as reader:
        data = collect(reader, identity(loaded, reader.path, scope))
        files = export_tables(reader, folder, suffix)
    files.append(write_text(folder / f"signoff{suffix}.html", render_signoff(data)))
    result = _result(data, tuple(files))
    for line in result.lines():
        write(line)
    return result


def identity(loaded: LoadedProfile, ledger: Path, scope: ReportScope) -> Identity:
    """Who and what the report is about, generated now in the site's time zone."""
    profile = loaded.profile
    zone = ZoneInfo(profile.site.timezone)
    return Identity(
        site_id=profile.site.id, site_name=profile.site.name,
        source_name=profile.source.name, destination_name=profile.destination.in_reports,
        profile_path=str(loaded.path.resolve()), profile_sha256=loaded.sha256,
        runner_version=__version__, ledger_path=str(ledger), timezone=profile.site.timezone,
        masked=profile.reports.mask_identifiers, rules=tuple(loaded.rules.describe()),
        generated_at=datetime.now(UTC).astimezone(zone), scope=scope,
        method=scope_and_method(profile, loaded.rules))


_VERIFY_WORDS = {
    "instances": "image-level C-FIND at the destination: every instance by its SOP Instance "
                 "UID, with the values the morphing rules set",
    "counts": "study-level C-FIND at the destination: the number of instances of each study",
    "commitment": "Storage Commitment: the destination commits to every instance by its UID",
}


def _verify_words(profile: SiteProfile) -> str:
    """How the destination was checked; for a DICOMweb one, by QIDO-RS instead of C-FIND."""
    words = _VERIFY_WORDS.get(profile.destination.verify, profile.destination.verify)
    if profile.destination.dicomweb is None:
        return words
    return words.replace("image-level C-FIND", "QIDO-RS of each study's instances").replace(
        "study-level C-FIND", "QIDO-RS of each study")


def scope_and_method(profile: SiteProfile, rules: RuleSet) -> tuple[tuple[str, str], ...]:
    """What the migration covered and how it was checked, in words, from the profile."""
    query = profile.source.inventory
    devices = ", ".join(f"{d.id} ({d.ae_title} at {d.host}:{d.port})"
                        for d in profile.source.devices)
    described = rules.describe()
    return (
        ("Inventory range", f"studies dated {query.from_} to {query.to} (C-FIND in windows "
                            f"of {query.window_days} days)"),
        ("Census", "date windows and a sweep with any Study Date (undated and out-of-window "
                   "studies found); undated studies "
                   f"{'planned' if query.undated == 'plan' else 'excluded'}"
                   if query.census == "full" else "date windows only"),
        ("Source devices", devices),
        ("Modalities", ", ".join(query.modalities) or "all"),
        ("Verification", _verify_words(profile)),
        ("Morphing rules", "; ".join(f"{i}. {r}" for i, r in enumerate(described, 1))
         or "none: instances are stored as received"),
    )


def _result(data: ReportData, files: tuple[Path, ...]) -> ReportResult:
    head = data.headline
    return ReportResult(files=files, scope=data.identity.scope,
                        planned_studies=head.planned_studies,
                        verified_studies=head.verified_studies,
                        planned_instances=head.planned_instances,
                        destination_instances=head.destination_instances,
                        verified_gb=head.verified_gb)
