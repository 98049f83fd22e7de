"""The sign-off HTML: self-contained, escaped, numbers for people, empty sections explained."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from runner.ledger import Ledger, StudyStatus
from runner.report import collect as collect_module
from runner.report.markup import css_string
from runner.report.render import render_signoff
from runner.report.scope import ReportScope
from tests.unit.test_report_sql import Builder, building, close, report

EXTERNAL = re.compile(r"https?://|\bsrc=|\bhref=|url\(|@import", re.IGNORECASE)


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.duckdb"


@pytest.fixture
def site(ledger_path: Path) -> Iterator[Builder]:
    with building(ledger_path) as builder:
        yield builder


def test_a_report_of_an_empty_ledger_explains_every_empty_section(tmp_path: Path) -> None:
    path = tmp_path / "ledger.duckdb"
    Ledger.open(path).close()
    html = render_signoff(report(path))
    for sentence in ("No studies are planned in this scope: there is nothing to sign off.",
                     "No exceptions: no study is planned in this scope.",
                     "No throughput to show", "No device activity",
                     "No dead time or down time was recorded",
                     "No failures:", "No run has been recorded in this ledger yet."):
        assert sentence in html
    assert not EXTERNAL.search(html)


def test_a_fully_verified_migration_says_so_and_has_no_exceptions(
        site: Builder, ledger_path: Path) -> None:
    site.plan("1.1")
    site.migrate("1.1")
    close(site)
    html = render_signoff(report(ledger_path))
    assert "Every planned study of the source is verified at the destination: 1 study, " \
           "2 instances." in html
    assert "No exceptions: every planned study was verified." in html
    assert "Exceptions: 0 studies not verified" in html


def test_large_numbers_have_thousands_separators(site: Builder,
                                                 ledger_path: Path) -> None:
    site.plan("1.1", instances=1_234_567, mb=2_500_000.0)
    close(site)
    html = render_signoff(report(ledger_path))
    assert "<td class=\"num\">1,234,567</td>" in html
    assert "<td class=\"num\">2,500.00</td>" in html
    assert "1234567" not in html


def test_text_from_the_ledger_is_escaped(site: Builder, ledger_path: Path) -> None:
    site.plan("1.<b>")
    site.retrieve("1.<b>", category="failure", detail="<script>alert('x')</script>")
    close(site)
    html = render_signoff(report(ledger_path))
    assert "<script" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "1.&lt;b&gt;" in html


def test_the_report_states_an_interim_scope(site: Builder, ledger_path: Path) -> None:
    site.plan("1.1", phase=1, study_date=date(2016, 3, 1))
    close(site)
    scope = ReportScope(date_from=date(2016, 1, 1), date_to=date(2016, 12, 31), phase=2)
    html = render_signoff(report(ledger_path, scope))
    assert ("Scope: interim report: phase 2, studies dated 2016-01-01 to 2016-12-31 "
            "(by study date)") in html
    assert 'class="scope interim"' in html


def test_the_report_has_every_section_and_the_signature_lines(
        site: Builder, ledger_path: Path) -> None:
    site.plan("1.1")
    site.migrate("1.1")
    site.plan("1.2")
    close(site)
    html = render_signoff(report(ledger_path))
    for heading in ("Identity", "Executive summary", "Totals", "Throughput", "Source devices",
                    "Total work", "Retries and failures", "Exceptions: 1 study not verified",
                    "Sign-off"):
        assert f">{heading}</h2>" in html
    for role in ("PACS manager", "Migration consultant", "Clinical lead"):
        assert f"<td>{role}</td>" in html
    assert "@page" in html and "size: A4" in html and "break-before: page" in html
    assert "<script" not in html and not EXTERNAL.search(html)
    assert html.count('<section class="major">') >= 4


def test_a_css_string_cannot_end_the_style_element() -> None:
    escaped = css_string('Trust </style><script>"x"\\')
    assert "<" not in escaped and '"' not in escaped and "\\\\" not in escaped
    assert escaped.startswith("Trust \\3c ")


def test_pending_studies_beyond_the_shown_few_are_counted_not_listed(
        site: Builder, ledger_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collect_module, "PENDING_SHOWN", 2)
    for n in range(5):
        site.plan(f"1.pending.{n}")
    site.plan("1.failed")
    site.ledger.flush()
    site.ledger.record_study_status("1.failed", StudyStatus.FAILED, "gone from the source")
    close(site)
    data = report(ledger_path)
    assert [e.study_uid for e in data.exceptions] == ["1.failed", "1.pending.0", "1.pending.1"]
    html = render_signoff(data)
    assert "Exceptions: 6 studies not verified" in html
    assert "3 more studies not started yet (pending) are not listed here" in html
