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
    JPEGLSLossless,
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


def test_a_destination_accepting_only_lossy_syntaxes_gets_nothing() -> None:
    with pytest.raises(TranscodeError, match="nor any uncompressed syntax or lossless"):
        target_syntax(RLELossless, [JPEG2000, JPEGBaseline8Bit])


def test_uncompressed_is_preferred_to_a_lossless_compression() -> None:
    plan = target_syntax(JPEGLSLossless, [JPEG2000Lossless, ImplicitVRLittleEndian])
    assert plan.sent_syntax == ImplicitVRLittleEndian
    assert target_syntax(JPEGLSLossless, [JPEG2000Lossless, RLELossless]).sent_syntax == \
        RLELossless


def _signed_rgb(photometric: str) -> Dataset:
    """A small image unlike the generator's: signed 16-bit grey, or 8-bit RGB."""
    ds = _instance()
    if photometric == "RGB":
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit, ds.PixelRepresentation = 7, 0
        ds.PixelData = numpy.arange(ds.Rows * ds.Columns * 3, dtype=numpy.uint8).tobytes()
    else:
        ds.PixelRepresentation = 1
        values = numpy.linspace(-1024, 3071, ds.Rows * ds.Columns).astype(numpy.int16)
        ds.PixelData = values.tobytes()
    return ds


@pytest.mark.parametrize("target", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
@pytest.mark.parametrize("source", [ExplicitVRBigEndian, JPEGLSLossless, RLELossless])
@pytest.mark.parametrize("photometric", ["MONOCHROME2", "RGB"])
def test_a_destination_taking_only_compressed_data_gets_a_lossless_encoding_of_the_same_pixels(
        target: str, source: str, photometric: str) -> None:
    if target == source:
        return
    original = _signed_rgb(photometric)
    ds = _signed_rgb(photometric)
    if source == ExplicitVRBigEndian:
        transcode(ds, target_syntax(ExplicitVRLittleEndian, [ExplicitVRBigEndian]))
    else:
        ds.compress(source, generate_instance_uid=False)
    plan = target_syntax(source, [target, JPEGBaseline8Bit])
    transcode(ds, plan)
    assert (plan.sent_syntax, ds.file_meta.TransferSyntaxUID) == (target, target)
    assert ds.SOPInstanceUID == original.SOPInstanceUID
    assert ds.PhotometricInterpretation == original.PhotometricInterpretation
    assert numpy.array_equal(ds.pixel_array, original.pixel_array)


def test_pixels_an_encoder_cannot_take_are_an_exception_not_a_change() -> None:
    ds = _instance()
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 32, 32, 31  # JPEG-LS stops at 16 bits
    ds.PixelData = numpy.arange(ds.Rows * ds.Columns, dtype=numpy.uint32).tobytes()
    with pytest.raises(TranscodeError, match="cannot encode the pixel data in JPEG-LS"):
        transcode(ds, target_syntax(ExplicitVRLittleEndian, [JPEGLSLossless]))


def test_an_encoding_that_does_not_give_back_the_same_pixels_is_not_sent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    compress = Dataset.compress

    def off_by_one(ds: Dataset, uid: str, arr: numpy.ndarray, **kwargs: object) -> None:
        compress(ds, uid, arr + 1, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Dataset, "compress", off_by_one)
    with pytest.raises(TranscodeError, match="did not give back the same pixels"):
        transcode(_instance(), target_syntax(ExplicitVRLittleEndian, [RLELossless]))


def test_an_object_without_pixels_goes_in_a_compressed_syntax_unchanged() -> None:
    ds = _instance()
    del ds.PixelData
    before = ds.to_json_dict()
    transcode(ds, target_syntax(ImplicitVRLittleEndian, [JPEG2000Lossless]))
    assert ds.file_meta.TransferSyntaxUID == JPEG2000Lossless and ds.to_json_dict() == before


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
