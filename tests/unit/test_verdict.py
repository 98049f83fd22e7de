"""verdict(): how an answered check of a study is judged, for every verification mode."""

from __future__ import annotations

import pytest

from runner.execute.settlement.verdict import Verdict, verdict

SENT = ("1.1", "1.2", "1.3")


@pytest.mark.parametrize(("found", "source", "ok"), [
    (3, 3, True), (4, 3, True), (2, 3, False), (0, 3, False), (0, 0, True)])
def test_counts_compares_the_destination_count_with_the_source_count(
        found: int, source: int, ok: bool) -> None:
    assert verdict("counts", SENT, (), found, source) == Verdict(ok, ())


@pytest.mark.parametrize("method", ["instances", "commitment"])
def test_every_instance_sent_and_confirmed_is_verified(method: str) -> None:
    assert verdict(method, SENT, SENT, 3, 3) == Verdict(True, ())


@pytest.mark.parametrize("method", ["instances", "commitment"])
def test_an_instance_not_confirmed_is_missing_by_uid(method: str) -> None:
    assert verdict(method, SENT, ("1.3", "1.1"), 2, 3) == Verdict(False, ("1.2",))


@pytest.mark.parametrize("method", ["instances", "commitment"])
def test_fewer_instances_sent_than_the_source_holds_is_not_verified(method: str) -> None:
    # everything sent was confirmed, but the source holds one more the run never received
    assert verdict(method, SENT, SENT, 3, 4) == Verdict(False, ())


@pytest.mark.parametrize("method", ["instances", "commitment"])
def test_a_count_alone_never_verifies_instance_by_instance(method: str) -> None:
    # the destination's count looks complete, but it confirmed none of what was sent
    assert verdict(method, SENT, (), 3, 3) == Verdict(False, SENT)
