"""Accession numbers for the reconciliation: before and after the rules, masked by default."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from runner.morph.accession import Accessions, masked
from tests.data.morph.datasets import rules

EXH = {"replace": {"tag": "AccessionNumber", "pattern": r"^(\d+)$", "with": r"EXH\1"}}


@pytest.mark.parametrize(("value", "shown"), [
    ("", ""), ("7", "*"), ("1234", "****"), ("12345", "*2345"),
    ("EXH12345678", "*******5678"), ("*******5678", "*******5678")])
def test_all_but_the_last_four_characters_are_masked(value: str, shown: str) -> None:
    assert masked(value) == shown


def test_the_rules_make_the_after_value_from_the_study_header() -> None:
    accessions = Accessions(rules(EXH), mask=False)
    assert accessions.before_after("1.2.3", "12345678", "P1", date(2019, 1, 2), "CT") == (
        "12345678", "EXH12345678")
    assert Accessions(rules(EXH)).before_after("1.2.3", "12345678", "P1", None, "CT") == (
        "****5678", "*******5678")


def test_a_rule_conditioned_on_the_modality_is_judged_on_the_header() -> None:
    only_mr = {**EXH, "when": {"Modality": "MR"}}
    accessions = Accessions(rules(only_mr), mask=False)
    assert accessions.before_after("1.2.3", "42", "P1", None, "CT") == ("42", "42")
    assert accessions.before_after("1.2.3", "42", "P1", None, "MR") == ("42", "EXH42")


def test_rules_that_fail_on_the_header_leave_the_after_value_unknown(tmp_path: Path) -> None:
    table = tmp_path / "accessions.csv"
    table.write_text("from,to\n111,A111\n")
    strict = {"map": {"tag": "AccessionNumber", "table": str(table), "missing": "fail"}}
    accessions = Accessions(rules(strict), mask=False)
    assert accessions.before_after("1.2.3", "111", "P1", None, "CT") == ("111", "A111")
    assert accessions.before_after("1.2.3", "222", "P1", None, "CT") == ("222", None)
