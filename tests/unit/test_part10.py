"""The hand-encoded Part-10 file meta (written and read back) and Spool.write_parts."""

from __future__ import annotations

import contextlib
import errno
import os
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from runner.dicom.part10 import MetaError, file_meta, read_meta
from runner.dicom.spool import Spool, SpoolFull
from runner.dicom.ul.pdu import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION

CT = "1.2.840.10008.5.1.4.1.1.2"  # 25 characters: odd
INSTANCE = "1.2.826.0.1.3680043.8.498.1234"  # 30 characters: even
ODD_INSTANCE = "1.2.826.0.1.3680043.8.498.12345"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"  # 22 characters: even


def _dataset(instance: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = instance
    ds.PatientName = "DOE^JANE"
    ds.PatientID = "P-001"
    ds.StudyInstanceUID = "1.2.3.4"
    ds.Rows = 2
    return ds


def _encoded(ds: Dataset, implicit: bool) -> bytes:
    """The data set as a peer sends it: no file meta, in the context's transfer syntax."""
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, implicit
    write_dataset(out, ds)
    return out.getvalue()


def _meta_elements(raw: bytes) -> dict[int, tuple[bytes, bytes]]:
    """(VR, value bytes) of each group 0002 element after the 132-byte preamble and prefix."""
    elements, offset = {}, 132
    while offset < len(raw):
        group, element, vr = struct.unpack_from("<HH2s", raw, offset)
        assert group == 2
        if vr == b"OB":
            (length,) = struct.unpack_from("<L", raw, offset + 8)
            start = offset + 12
        else:
            (length,) = struct.unpack_from("<H", raw, offset + 6)
            start = offset + 8
        elements[element] = (vr, raw[start:start + length])
        offset = start + length
    return elements


@pytest.mark.parametrize(("syntax", "implicit"), [(ExplicitVRLittleEndian, False),
                                                  (ImplicitVRLittleEndian, True)])
def test_file_meta_and_a_received_data_set_read_back_with_pydicom(syntax: str,
                                                                  implicit: bool) -> None:
    meta = file_meta(CT, ODD_INSTANCE, syntax, "MODALITY")
    ds = dcmread(DicomBytesIO(meta + _encoded(_dataset(ODD_INSTANCE), implicit)))
    assert ds.preamble == bytes(128)
    assert ds.file_meta.FileMetaInformationVersion == b"\x00\x01"
    assert ds.file_meta.MediaStorageSOPClassUID == CT
    assert ds.file_meta.MediaStorageSOPInstanceUID == ODD_INSTANCE
    assert ds.file_meta.TransferSyntaxUID == syntax
    assert ds.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert ds.file_meta.ImplementationVersionName == IMPLEMENTATION_VERSION
    assert ds.file_meta.SourceApplicationEntityTitle == "MODALITY"
    assert ds.file_meta.FileMetaInformationGroupLength == len(meta) - 132 - 12
    assert ds.SOPInstanceUID == ODD_INSTANCE
    assert ds.PatientName == "DOE^JANE"
    assert ds.Rows == 2


def test_group_length_counts_every_meta_element_after_it() -> None:
    meta = file_meta(CT, INSTANCE, ExplicitVRLittleEndian, "SRC")
    assert meta[:132] == bytes(128) + b"DICM"
    assert meta[132:144] == struct.pack("<HH2sHL", 2, 0, b"UL", 4, len(meta) - 144)


def test_odd_length_uids_are_padded_with_nul_and_text_with_a_space() -> None:
    elements = _meta_elements(file_meta(CT, ODD_INSTANCE, ExplicitVRLittleEndian, "ABC"))
    assert elements[0x0001] == (b"OB", b"\x00\x01")
    assert elements[0x0002] == (b"UI", CT.encode() + b"\x00")
    assert elements[0x0003] == (b"UI", ODD_INSTANCE.encode() + b"\x00")
    assert elements[0x0010] == (b"UI", ExplicitVRLittleEndian.encode() + b"\x00")
    assert elements[0x0012][0] == b"UI"
    assert elements[0x0012][1].rstrip(b"\x00") == IMPLEMENTATION_CLASS_UID.encode()
    assert elements[0x0013] == (b"SH", b"PACSMIG_1 ")
    assert elements[0x0016] == (b"AE", b"ABC ")
    assert all(len(value) % 2 == 0 for _, value in elements.values())


def test_even_length_values_are_not_padded() -> None:
    elements = _meta_elements(file_meta(CT, INSTANCE, JPEG_BASELINE, "ABCD"))
    assert elements[0x0003] == (b"UI", INSTANCE.encode())
    assert elements[0x0010] == (b"UI", JPEG_BASELINE.encode())
    assert elements[0x0016] == (b"AE", b"ABCD")


def test_without_a_source_ae_there_is_no_source_ae_element() -> None:
    meta = file_meta(CT, INSTANCE, ExplicitVRLittleEndian)
    assert sorted(_meta_elements(meta)) == [0x0000, 0x0001, 0x0002, 0x0003, 0x0010, 0x0012,
                                            0x0013]
    ds = dcmread(DicomBytesIO(meta + _encoded(_dataset(INSTANCE), False)))
    assert "SourceApplicationEntityTitle" not in ds.file_meta


@pytest.mark.parametrize("source_ae", ["", "A", "STORESCU", "SIXTEEN_CHARS_AE"])
def test_file_meta_is_byte_identical_to_pydicoms(source_ae: str) -> None:
    theirs = FileMetaDataset()
    theirs.MediaStorageSOPClassUID = UID(CT)
    theirs.MediaStorageSOPInstanceUID = UID(ODD_INSTANCE)
    theirs.TransferSyntaxUID = ExplicitVRLittleEndian
    theirs.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    theirs.ImplementationVersionName = IMPLEMENTATION_VERSION
    if source_ae:
        theirs.SourceApplicationEntityTitle = source_ae
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    write_file_meta_info(out, theirs, enforce_standard=True)
    ours = file_meta(CT, ODD_INSTANCE, ExplicitVRLittleEndian, source_ae)
    assert ours == bytes(128) + b"DICM" + out.getvalue()


# -- read_meta -----------------------------------------------------------------------------------


def test_read_meta_finds_the_uids_and_where_the_data_set_starts() -> None:
    meta = file_meta(CT, ODD_INSTANCE, ExplicitVRLittleEndian, "SRC")
    data = _encoded(_dataset(ODD_INSTANCE), False)
    found = read_meta(meta + data)
    assert (found.sop_class_uid, found.sop_instance_uid, found.transfer_syntax) \
        == (CT, ODD_INSTANCE, ExplicitVRLittleEndian)
    assert found.dataset_offset == len(meta)
    assert read_meta(memoryview(meta + data)) == found
    assert read_meta(meta) == found  # no data set at all


def test_read_meta_reads_a_file_written_by_pydicom(tmp_path: Path) -> None:
    ds = _dataset(INSTANCE)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(CT)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(INSTANCE)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "PYDICOM"
    ds.save_as(tmp_path / "x.dcm", enforce_file_format=True)
    raw = (tmp_path / "x.dcm").read_bytes()
    found = read_meta(raw)
    assert (found.sop_class_uid, found.sop_instance_uid, found.transfer_syntax) \
        == (CT, INSTANCE, ImplicitVRLittleEndian)
    assert dcmread(DicomBytesIO(raw[found.dataset_offset:]), force=True).PatientID == "P-001"


@pytest.mark.parametrize("raw", [
    b"", bytes(131), bytes(128) + b"DICX" + bytes(20),
    file_meta(CT, INSTANCE, ExplicitVRLittleEndian)[:132],
], ids=["empty", "short", "no DICM", "no elements"])
def test_read_meta_of_a_file_without_a_usable_header_raises_meta_error(raw: bytes) -> None:
    with pytest.raises(MetaError):
        read_meta(raw)


def test_read_meta_of_every_truncated_header_raises_only_meta_error() -> None:
    meta = file_meta(CT, ODD_INSTANCE, ExplicitVRLittleEndian, "SRC")
    for size in range(len(meta)):
        with contextlib.suppress(MetaError):
            found = read_meta(meta[:size])
            assert found.dataset_offset <= size


@given(st.binary(max_size=120))
@settings(max_examples=200, deadline=None)
def test_read_meta_of_random_bytes_after_the_prefix_raises_only_meta_error(tail: bytes) -> None:
    with contextlib.suppress(MetaError):
        read_meta(bytes(128) + b"DICM" + tail)


# -- Spool.write_parts ---------------------------------------------------------------------------


def test_write_parts_stores_the_concatenation_in_root_and_leaves_tmp_empty(
        tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    meta = file_meta(CT, ODD_INSTANCE, ExplicitVRLittleEndian, "SRC")
    data = _encoded(_dataset(ODD_INSTANCE), False)
    entry = spool.write_parts((meta, data))
    assert entry.path == spool.root / entry.name
    assert entry.path.read_bytes() == meta + data
    assert entry.size == len(meta) + len(data) == entry.path.stat().st_size
    assert list(spool.tmp.iterdir()) == []
    assert spool.used_bytes == entry.size
    assert [e.name for e in spool.existing()] == [entry.name]
    assert spool.used_bytes == entry.size  # the rescan agrees with the incremental count
    assert dcmread(entry.path).SOPInstanceUID == ODD_INSTANCE


def test_write_parts_skips_empty_parts(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1000)
    entry = spool.write_parts([b"", b"abc", b"", b"de", b""])
    assert entry.path.read_bytes() == b"abcde"
    assert entry.size == 5


def test_write_parts_of_nothing_writes_an_empty_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1000)
    entry = spool.write_parts([])
    assert entry.path.read_bytes() == b""
    assert (entry.size, spool.used_bytes) == (0, 0)


def test_write_parts_finishes_after_short_writes(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    real_writev = os.writev
    calls: list[int] = []

    def short_writev(fd: int, buffers: list[memoryview]) -> int:
        calls.append(len(buffers))
        return real_writev(fd, [bytes(buffers[0][:7])])

    monkeypatch.setattr(os, "writev", short_writev)
    spool = Spool(tmp_path, max_bytes=1000)
    entry = spool.write_parts([b"0123456789", b"abcdefghij", b"KLMNO"])
    assert entry.path.read_bytes() == b"0123456789abcdefghijKLMNO"
    assert len(calls) > 3


def test_write_parts_over_the_budget_counts_all_parts_and_writes_nothing(
        tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100)
    with pytest.raises(SpoolFull):
        spool.write_parts([b"m" * 60, b"d" * 41])
    assert spool.used_bytes == 0
    assert spool.existing() == []
    assert list(spool.tmp.iterdir()) == []


def test_write_parts_hitting_a_full_disk_leaves_nothing_and_releases_the_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_writev = os.writev
    written: list[int] = []

    def disk_full_after_one_write(fd: int, buffers: list[memoryview]) -> int:
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(real_writev(fd, buffers[:1]))
        return written[-1]

    monkeypatch.setattr(os, "writev", disk_full_after_one_write)
    spool = Spool(tmp_path, max_bytes=1000)
    with pytest.raises(SpoolFull):
        spool.write_parts([b"meta", b"data"])
    assert written == [4]
    assert spool.used_bytes == 0
    assert spool.is_full
    assert list(spool.tmp.iterdir()) == []
    assert spool.existing() == []
