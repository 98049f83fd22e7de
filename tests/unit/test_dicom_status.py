"""DIMSE status codes land in the right category."""

from __future__ import annotations

import pytest

from runner.dicom.status import STATUS_RANGES, StatusCategory, categorize


@pytest.mark.parametrize(
    ("code", "category"),
    [
        (0x0000, StatusCategory.SUCCESS),
        (0xFF00, StatusCategory.PENDING),
        (0xFF01, StatusCategory.PENDING),
        (0xFE00, StatusCategory.CANCEL),
        (0x0001, StatusCategory.WARNING),
        (0xB007, StatusCategory.WARNING),
        (0xB006, StatusCategory.WARNING),
        (0xA700, StatusCategory.OUT_OF_RESOURCES),
        (0xA702, StatusCategory.OUT_OF_RESOURCES),
        (0xA7FF, StatusCategory.OUT_OF_RESOURCES),
        (0xA801, StatusCategory.MOVE_DESTINATION_UNKNOWN),
        (0xB000, StatusCategory.SUB_OPS_FAILED),
        (0xC000, StatusCategory.UNABLE_TO_PROCESS),
        (0xC0FF, StatusCategory.UNABLE_TO_PROCESS),
        (0xC100, StatusCategory.FAILURE),
        (0xCFFF, StatusCategory.FAILURE),
        (0xA900, StatusCategory.FAILURE),
        (0xA800, StatusCategory.FAILURE),
        (0x0110, StatusCategory.FAILURE),
        (0x0122, StatusCategory.FAILURE),
        (0x0211, StatusCategory.FAILURE),
    ],
)
def test_status_code_is_sorted_into_its_category(code: int, category: StatusCategory) -> None:
    assert categorize(code) is category


def test_unknown_status_codes_count_as_failure() -> None:
    assert categorize(0x1234) is StatusCategory.FAILURE
    assert categorize(0xD000) is StatusCategory.FAILURE


def test_specific_ranges_win_over_the_general_ones_that_contain_them() -> None:
    seen: list[tuple[int, int]] = []
    for first, last, category in STATUS_RANGES:
        for code in (first, last):
            if not any(a <= code <= b for a, b in seen):
                assert categorize(code) is category
        seen.append((first, last))


def test_only_success_and_warning_are_ok_and_transport_categories_are_marked() -> None:
    ok = {c for c in StatusCategory if c.is_ok}
    transport = {c for c in StatusCategory if c.is_transport}
    assert ok == {StatusCategory.SUCCESS, StatusCategory.WARNING}
    assert transport == {
        StatusCategory.ABORTED,
        StatusCategory.TIMEOUT,
        StatusCategory.NO_ASSOCIATION,
    }


def test_describe_names_each_status_with_its_likely_cause() -> None:
    from runner.dicom.status import describe

    assert describe(0xA801).startswith("0xA801 Move destination unknown (")
    assert "register the runner's listener" in describe(0xA801)
    assert describe(0xC000).startswith("0xC000 Unable to process (")
    assert "cannot open an association to the move destination" in describe(0xC001)
    assert describe(0xA700).startswith("0xA700 Out of resources")
    assert describe(0xB000).startswith("0xB000 Sub-operations failed")
    assert describe(0x0124).startswith("0x0124 Refused: not authorized")
    assert describe(0xDEAD) == "0xDEAD Failure (a status no table names)"


def test_reject_reasons_in_words() -> None:
    from runner.dicom.status import reject_reason

    assert reject_reason(1, 3) == "calling AE title not recognized"
    assert reject_reason(1, 7) == "called AE title not recognized"
    assert reject_reason(9, 9) == "source 9, reason 9"
