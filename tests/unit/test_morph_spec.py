"""The spec's rule set end to end, UID mapping, the dry run, and untouched elements."""

from __future__ import annotations

from io import BytesIO

import pytest
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from tests.data.morph.datasets import (
    SOP_UID,
    SPEC_RULES,
    STUDY_UID,
    add_private,
    cr_instance,
    encode,
    reread,
    rules,
    tags_of,
)

pytestmark = pytest.mark.filterwarnings("error")


def _expected_cr() -> Dataset:
    ds = cr_instance(InstitutionName="Example Hospital", AccessionNumber="EXH123456",
                     PatientID="NEW001", OtherPatientIDs=None)
    item = Dataset()
    item.CodeValue = "XR123"
    ds.ProcedureCodeSequence = [item]
    return ds


def test_spec_rules_on_a_cr_instance_give_exactly_the_expected_dataset() -> None:
    ds = reread(add_private(cr_instance()))
    result = rules(*SPEC_RULES).apply(ds)
    assert result.ok and result.fired == (0, 1, 2, 3, 4)
    assert result.changed_tags == {0x00080080, 0x00080050, 0x00100020, 0x00101000,
                                   0x00090010, 0x00091001, 0x00081032}
    assert encode(ds) == encode(_expected_cr())


def test_spec_rules_leave_a_ct_instance_alone_apart_from_its_own_matches() -> None:
    ds = reread(cr_instance(Modality="CT", AccessionNumber="EXH9", PatientID="OTHER",
                            OtherPatientIDs=None))
    before = encode(ds)
    ruleset = rules(*SPEC_RULES)
    assert not ruleset.may_touch(ds)
    result = ruleset.apply(ds)
    assert result.ok and result.fired == () and result.changed_tags == frozenset()
    assert encode(ds) == before


def test_may_touch_is_a_dry_run() -> None:
    ds = reread(add_private(cr_instance()))
    before = encode(ds)
    assert rules(*SPEC_RULES).may_touch(ds)
    assert encode(ds) == before
    failing = rules({"map": {"tag": "PatientID", "table": SPEC_RULES[2]["map"]["table"],
                             "missing": "fail"}})
    assert failing.may_touch(reread(cr_instance(PatientID="UNLISTED")))


def test_only_changed_elements_are_converted_pixel_data_included() -> None:
    ds = cr_instance(Modality="CT")
    ds.Rows = ds.Columns = 512
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = bytes(range(256)) * (512 * 512 * 2 // 256)
    ds = reread(add_private(ds))
    raw = {tag for tag in tags_of(ds) if isinstance(ds.get_item(tag), RawDataElement)}
    result = rules(*SPEC_RULES).apply(ds)
    # pydicom itself reads PixelRepresentation when a sequence is stored (for US/SS items).
    untouched = raw - result.changed_tags - {0x00280103}
    assert 0x7FE00010 in untouched and len(untouched) > 15
    assert all(isinstance(ds.get_item(tag), RawDataElement) for tag in untouched)


def test_uid_change_with_opt_in_reports_source_and_destination() -> None:
    ruleset = rules({"replace": {"tag": "SOPInstanceUID", "pattern": r"^1\.2\.826",
                                 "with": "2.25.826"}}, allow_uid_changes=True)
    ds = reread(cr_instance())
    result = ruleset.apply(ds)
    change = result.sop_instance_uid_change
    assert change is not None
    assert (change.source, change.destination) == (SOP_UID, "2.25.826" + SOP_UID[7:])
    assert ds.SOPInstanceUID == change.destination
    assert [c.tag for c in result.uid_changes] == [0x00080018]


def test_study_uid_change_is_reported_without_a_sop_pair() -> None:
    ruleset = rules({"replace": {"tag": "StudyInstanceUID", "pattern": "$", "with": ".7"}},
                    allow_uid_changes=True)
    result = ruleset.apply(cr_instance())
    assert result.sop_instance_uid_change is None
    assert [(c.source, c.destination) for c in result.uid_changes] == [
        (STUDY_UID, STUDY_UID + ".7")]


def test_uid_change_producing_an_invalid_uid_fails() -> None:
    ruleset = rules({"replace": {"tag": "SOPInstanceUID", "pattern": "^", "with": "x"}},
                    allow_uid_changes=True)
    result = ruleset.apply(cr_instance())
    assert result.failed is not None and "UID" in result.failed


def test_result_of_apply_reads_back_from_the_written_file() -> None:
    ds = reread(add_private(cr_instance()))
    rules(*SPEC_RULES).apply(ds)
    back = dcmread(BytesIO(encode(ds)))
    assert (back.InstitutionName, back.AccessionNumber, back.PatientID) == (
        "Example Hospital", "EXH123456", "NEW001")
