"""The listener reads an instance's identifying UIDs from the first bytes received, never a
value cut short where the first fragment (or the prefix it reads) ends."""

from __future__ import annotations

import warnings
from datetime import date

import pytest
from pydicom import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

import runner.dicom.header as header
from runner.dicom.part10 import read_meta
from runner.sim.generate import ct_512, make_study, synthetic_archive, to_bytes


@pytest.fixture(scope="module")
def dataset_and_syntax() -> tuple[bytes, str]:
    [spec] = [ct_512(s) for s in synthetic_archive("hdr", 1, date(2015, 1, 1), date(2016, 1, 1),
                                                   modalities=("CT",), instances_per_series=1)]
    raw = to_bytes(next(iter(make_study(spec))))
    meta = read_meta(raw)
    return raw[meta.dataset_offset:], meta.transfer_syntax


@pytest.mark.parametrize("prefix", [1, 100, 555, 1000, 16384])
def test_header_from_the_first_fragment_equals_the_whole_parse_wherever_it_is_cut(
    dataset_and_syntax: tuple[bytes, str], prefix: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset, syntax = dataset_and_syntax
    whole = header.parse_dataset_header(dataset, syntax)
    monkeypatch.setattr(header, "_HEADER_PREFIX", prefix)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a cut SpecificCharacterSet warns before the retry
        for cut in range(1, 2000, 3):
            fragments = [memoryview(dataset[:cut]), memoryview(dataset[cut:])]
            assert header.header_of(fragments, syntax) == whole, cut


def test_a_dataset_without_the_identifying_uids_is_still_refused(
    dataset_and_syntax: tuple[bytes, str],
) -> None:
    _dataset, syntax = dataset_and_syntax
    with pytest.raises(header.HeaderError):
        header.header_of([memoryview(b"\x08\x00\x16\x00UI\x02\x00")], syntax)


def _encoded(ds: Dataset, implicit: bool, little: bool) -> bytes:
    out = DicomBytesIO()
    out.is_implicit_VR, out.is_little_endian = implicit, little
    write_dataset(out, ds)
    return out.getvalue()


ENCODINGS = [
    (ImplicitVRLittleEndian, True, True),
    (ExplicitVRLittleEndian, False, True),
    (ExplicitVRBigEndian, False, False),
]


@pytest.fixture(scope="module")
def instance() -> Dataset:
    [spec] = [ct_512(s) for s in synthetic_archive("scan", 1, date(2015, 1, 1),
                                                   date(2016, 1, 1), modalities=("CT",),
                                                   instances_per_series=1)]
    ds: Dataset = next(iter(make_study(spec)))
    return ds


@pytest.mark.parametrize(("syntax", "implicit", "little"), ENCODINGS)
@pytest.mark.parametrize("undefined", [False, True])
def test_the_header_scan_reads_what_pydicom_reads_in_every_encoding(
    instance: Dataset, syntax: str, implicit: bool, little: bool, undefined: bool
) -> None:
    ds = Dataset()
    ds.update(instance)
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = "1.2.3.4.5"  # odd length: padded with a NUL
    ds.ReferencedImageSequence = [item]  # (0008,1140): before the study and series UIDs
    ds["ReferencedImageSequence"].is_undefined_length = undefined
    ds.SeriesInstanceUID = "1.2.3"  # odd length: a NUL to strip
    data = _encoded(ds, implicit, little)
    whole = header.parse_dataset_header(data, syntax)

    scanned = header.scan_header(data, implicit, little)

    assert scanned == whole
    assert whole.series_uid == "1.2.3"


@pytest.mark.parametrize(("syntax", "implicit", "little"), ENCODINGS)
def test_the_header_scan_of_data_cut_short_is_unsure_or_right(
    instance: Dataset, syntax: str, implicit: bool, little: bool
) -> None:
    data = _encoded(instance, implicit, little)
    whole = header.parse_dataset_header(data, syntax)
    answers = {header.scan_header(data[:cut], implicit, little) for cut in range(0, 1500)}
    assert answers <= {None, whole}
    assert whole in answers
