"""The sign-off report states its scope and method (from the profile) and the profile's
absolute path."""

from __future__ import annotations

import html
import os
from datetime import date
from pathlib import Path

import pytest

from runner.commands.report import report_command
from runner.dicom.peer import Peer
from runner.ledger import LEDGER_FILENAME
from runner.morph.loaded import load_profile
from tests.profiles import profile_data, write_profile
from tests.unit.test_report_sql import building


def test_signoff_has_a_scope_and_method_section_and_the_absolute_profile_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = profile_data(tmp_path, [("old1", Peer("OLDPACS", "127.0.0.1", 11112)),
                                   ("old2", Peer("OLDPACS2", "127.0.0.1", 11115))],
                        Peer("NEWVNA", "127.0.0.1", 11113), 11114,
                        morphing=[{"set": {"InstitutionName": "Royal Example"}}])
    data["source"]["inventory"]["modalities"] = ["CT", "MR"]
    write_profile(tmp_path, data)
    monkeypatch.chdir(tmp_path)
    loaded = load_profile(Path("site.yaml"))  # relative, as a consultant types it
    with building(loaded.profile.reports.dir / LEDGER_FILENAME) as site:
        site.plan("1.1", study_date=date(2014, 2, 3), phase=0, instances=3)
        site.migrate("1.1", count=3)
    report_command(loaded, date_from=None, date_to=None, phase=None, write=lambda _l: None)
    page = html.unescape((loaded.profile.reports.dir / "signoff.html").read_text())
    assert "<h2>Scope and method</h2>" in page
    assert "studies dated 2000-01-01 to today" in page
    assert "old1 (OLDPACS at 127.0.0.1:11112), old2 (OLDPACS2 at 127.0.0.1:11115)" in page
    assert "<td>CT, MR</td>" in page
    assert "image-level C-FIND at the destination" in page
    assert "1. Set InstitutionName to 'Royal Example'" in page
    assert str(tmp_path / "site.yaml") in page and os.path.isabs(str(tmp_path))
    for internal in ("dead_time_start", "dead_time_end", "device_down", "device_up"):
        assert internal not in page  # the trust's report has no internal event names
