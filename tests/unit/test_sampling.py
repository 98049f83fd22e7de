"""Deep verification by sampling: which instances are read back, and what counts as different."""

from __future__ import annotations

from pydicom import Dataset

from runner.execute.settlement.sampling import Sampled, choose, compare


def rows(count: int) -> list[Sampled]:
    return [Sampled("1.2", "1.2.3", f"1.2.3.{n}", "old1") for n in range(count)]


def test_a_count_a_fraction_and_the_same_sample_each_time() -> None:
    assert len(choose(rows(50), 7, "site")) == 7
    assert len(choose(rows(50), 0.1, "site")) == 5
    assert choose(rows(50), 7, "site") == choose(list(reversed(rows(50))), 7, "site")
    assert choose(rows(50), 7, "site") != choose(rows(50), 7, "other-site")


def _ds(**values: object) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def test_missing_added_and_changed_attributes_are_named_by_tag() -> None:
    expected = _ds(PatientID="1", StudyDescription="A", PixelData=b"\0\1")
    actual = _ds(PatientID="1", StudyDescription="B", Modality="CT", PixelData=b"\0\2")
    assert compare(expected, actual, transcoded=False) == [
        "(0008,0060) added at the destination",
        "(0008,1030) has another value at the destination",
        "Pixel Data bytes differ"]
    assert compare(expected, expected, transcoded=False) == []
