"""Lossless transcoding: which syntax a refused instance goes in, and which cannot go at all."""

from __future__ import annotations

from datetime import date

import numpy
import pytest
from pydicom import Dataset
from pydicom.uid import (
    JPEG2000,
    MPEG4HP41,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSNearLossless,
    RLELossless,
)

from runner.dicom.transcode import TranscodeError, target_syntax, transcode
from runner.sim.generate import StudySpec, make_study


def test_explicit_little_endian_is_preferred_among_the_accepted() -> None:
    plan = target_syntax(RLELossless, [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
    assert (plan.source_syntax, plan.sent_syntax) == (RLELossless, ExplicitVRLittleEndian)
    assert "does not accept RLE Lossless" in plan.reason


def test_only_deflated_accepted_is_a_lossless_target() -> None:
    plan = target_syntax(ExplicitVRBigEndian, [DeflatedExplicitVRLittleEndian])
    assert plan.sent_syntax == DeflatedExplicitVRLittleEndian


@pytest.mark.parametrize("lossy", [JPEGBaseline8Bit, JPEGLSNearLossless, JPEG2000, MPEG4HP41])
def test_a_lossy_source_is_never_decoded(lossy: str) -> None:
    with pytest.raises(TranscodeError, match="cannot be transcoded without loss"):
        target_syntax(lossy, [ExplicitVRLittleEndian])


def test_a_destination_accepting_only_compressed_syntaxes_gets_nothing() -> None:
    with pytest.raises(TranscodeError, match="nor any uncompressed syntax"):
        target_syntax(RLELossless, [JPEG2000Lossless])


def _instance() -> Dataset:
    [ds] = make_study(StudySpec("transcode", "P", "A^B", date(2016, 1, 1), "CT",
                                bits_allocated=16))
    return ds


def test_a_compressed_instance_keeps_its_uid_and_its_pixels() -> None:
    original = _instance()
    ds = _instance()
    ds.compress(RLELossless, generate_instance_uid=False)
    transcode(ds, target_syntax(RLELossless, [ExplicitVRLittleEndian]))
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.SOPInstanceUID == original.SOPInstanceUID
    assert numpy.array_equal(ds.pixel_array, original.pixel_array)


def test_little_to_big_endian_swaps_the_pixel_words() -> None:
    ds = _instance()
    before = bytes(ds.PixelData)
    transcode(ds, target_syntax(ExplicitVRLittleEndian, [ExplicitVRBigEndian]))
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRBigEndian
    assert ds.PixelData[0::2] == before[1::2] and ds.PixelData[1::2] == before[0::2]


def test_a_syntax_pydicom_does_not_know_is_not_transcoded() -> None:
    with pytest.raises(TranscodeError, match="cannot be transcoded without loss"):
        target_syntax("1.2.840.10008.1.2.4.110", [ExplicitVRLittleEndian])  # JPEG XL lossless
