"""DIMSE command sets (group 0000, implicit VR LE): round trips, padding, responses, parity."""

from __future__ import annotations

import contextlib
import struct
from io import BytesIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pynetdicom import dimse_messages, dimse_primitives
from pynetdicom import pdu as pn_pdu
from pynetdicom.dsutils import encode as pn_encode

from runner.dicom.ul import dimse, pdu
from runner.dicom.ul.dimse import DimseError

CT = "1.2.840.10008.5.1.4.1.1.2"
ODD_UID = "1.2.840.113619.2.55.3.604688119.969.1268071029.32"  # 49 characters
assert len(ODD_UID) % 2 == 1

STORE: dimse.Command = {
    dimse.AFFECTED_SOP_CLASS: CT,
    dimse.COMMAND_FIELD: dimse.C_STORE_RQ,
    dimse.MESSAGE_ID: 7,
    dimse.PRIORITY: 2,
    dimse.DATASET_TYPE: dimse.HAS_DATASET,
    dimse.AFFECTED_SOP_INSTANCE: ODD_UID,
    dimse.MOVE_ORIGINATOR_AE: "MOVER",
    dimse.MOVE_ORIGINATOR_ID: 65535,
}


def _elements(raw: bytes) -> list[tuple[int, int, bytes]]:
    """(group, element, value bytes) of each element of an encoded command set, in order."""
    out, offset = [], 0
    while offset < len(raw):
        group, element, length = struct.unpack_from("<HHL", raw, offset)
        out.append((group, element, raw[offset + 8: offset + 8 + length]))
        offset += 8 + length
    return out


def _read_with_pydicom(raw: bytes) -> Dataset:
    ds: Dataset = read_dataset(BytesIO(raw), is_implicit_VR=True, is_little_endian=True)
    return ds


# -- encoding and decoding -----------------------------------------------------------------------


def test_encode_then_decode_gives_back_every_element_and_the_group_length() -> None:
    raw = dimse.encode(STORE)
    assert dimse.decode(raw) == {dimse.GROUP_LENGTH: len(raw) - 12, **STORE}


def test_group_length_comes_first_then_elements_in_ascending_order() -> None:
    elements = _elements(dimse.encode(dict(reversed(list(STORE.items())))))
    numbers = [element for _, element, _ in elements]
    assert numbers == [dimse.GROUP_LENGTH, *sorted(STORE)]
    assert {group for group, _, _ in elements} == {0}
    assert elements[0][2] == struct.pack("<L", sum(8 + len(v) for _, _, v in elements[1:]))


def test_a_group_length_given_by_the_caller_is_replaced_by_the_true_one() -> None:
    raw = dimse.encode({dimse.GROUP_LENGTH: 9999, dimse.COMMAND_FIELD: dimse.C_ECHO_RQ})
    assert dimse.decode(raw)[dimse.GROUP_LENGTH] == 10
    assert len(_elements(raw)) == 2


def test_us_and_ul_values_take_two_and_four_bytes_little_endian() -> None:
    values = dict((element, value) for _, element, value in _elements(dimse.encode(STORE)))
    assert values[dimse.MESSAGE_ID] == b"\x07\x00"
    assert values[dimse.MOVE_ORIGINATOR_ID] == b"\xff\xff"
    assert len(values[dimse.GROUP_LENGTH]) == 4


def test_odd_length_uids_are_padded_with_nul_and_read_back_without_it() -> None:
    raw = dimse.encode({dimse.COMMAND_FIELD: 1, dimse.AFFECTED_SOP_CLASS: "1.2.3",
                        dimse.AFFECTED_SOP_INSTANCE: ODD_UID, 0x0003: "1.2.345",
                        0x1001: "9"})
    values = dict((element, value) for _, element, value in _elements(raw))
    assert values[dimse.AFFECTED_SOP_CLASS] == b"1.2.3\x00"
    assert values[dimse.AFFECTED_SOP_INSTANCE] == ODD_UID.encode() + b"\x00"
    assert values[0x0003] == b"1.2.345\x00"
    assert values[0x1001] == b"9\x00"
    decoded = dimse.decode(raw)
    assert (decoded[dimse.AFFECTED_SOP_CLASS], decoded[dimse.AFFECTED_SOP_INSTANCE]) \
        == ("1.2.3", ODD_UID)


def test_odd_length_ae_titles_and_comments_are_padded_with_a_space() -> None:
    raw = dimse.encode({dimse.COMMAND_FIELD: 1, dimse.MOVE_ORIGINATOR_AE: "MOVER",
                        0x0600: "DEST", dimse.ERROR_COMMENT: "bad"})
    values = dict((element, value) for _, element, value in _elements(raw))
    assert values[dimse.MOVE_ORIGINATOR_AE] == b"MOVER "
    assert values[0x0600] == b"DEST"
    assert values[dimse.ERROR_COMMENT] == b"bad "
    decoded = dimse.decode(raw)
    assert (decoded[dimse.MOVE_ORIGINATOR_AE], decoded[dimse.ERROR_COMMENT]) == ("MOVER", "bad")


def test_even_length_text_is_not_padded() -> None:
    raw = dimse.encode({dimse.COMMAND_FIELD: 1, dimse.AFFECTED_SOP_CLASS: "1.23"})
    assert _elements(raw)[1][2] == b"1.23"


def test_bytes_values_and_unknown_elements_are_carried_as_they_are() -> None:
    command: dimse.Command = {dimse.COMMAND_FIELD: 1, 0x0901: b"\x10\x00\x10\x00", 0x5555: b"xyz"}
    decoded = dimse.decode(dimse.encode(command))
    assert (decoded[0x0901], decoded[0x5555]) == (b"\x10\x00\x10\x00", b"xyz")


def test_a_us_element_of_the_wrong_length_is_kept_as_bytes() -> None:
    raw = dimse.encode({dimse.COMMAND_FIELD: 1, dimse.MESSAGE_ID: b"\x07\x00\x00\x00"})
    command = dimse.decode(raw)
    assert command[dimse.MESSAGE_ID] == b"\x07\x00\x00\x00"
    assert dimse.number(command, dimse.MESSAGE_ID) is None


def test_decode_accepts_bytearray_and_memoryview() -> None:
    raw = dimse.encode(STORE)
    assert dimse.decode(bytearray(raw)) == dimse.decode(memoryview(raw)) == dimse.decode(raw)


# -- helpers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dataset_type", "expected"), [
    (dimse.NO_DATASET, False), (dimse.HAS_DATASET, True), (0xFEFE, True), (None, False),
])
def test_has_dataset_is_false_only_for_0101_or_when_absent(dataset_type: int | None,
                                                           expected: bool) -> None:
    command: dimse.Command = {dimse.COMMAND_FIELD: 1}
    if dataset_type is not None:
        command[dimse.DATASET_TYPE] = dataset_type
    assert dimse.has_dataset(command) is expected


def test_text_and_number_return_defaults_for_absent_or_mistyped_elements() -> None:
    command = dimse.decode(dimse.encode(STORE))
    assert dimse.text(command, dimse.AFFECTED_SOP_INSTANCE) == ODD_UID
    assert dimse.text(command, dimse.ERROR_COMMENT) == ""
    assert dimse.text(command, dimse.MESSAGE_ID) == ""
    assert dimse.number(command, dimse.MESSAGE_ID) == 7
    assert dimse.number(command, dimse.STATUS) is None
    assert dimse.number(command, dimse.AFFECTED_SOP_CLASS) is None


# -- responses -----------------------------------------------------------------------------------


def test_response_echoes_message_id_sop_class_and_instance_without_a_data_set() -> None:
    request = dimse.decode(dimse.encode(STORE))
    answer = dimse.decode(dimse.response(dimse.C_STORE_RSP, request, 0xB000))
    assert answer == {
        dimse.GROUP_LENGTH: answer[dimse.GROUP_LENGTH],
        dimse.AFFECTED_SOP_CLASS: CT,
        dimse.COMMAND_FIELD: dimse.C_STORE_RSP,
        dimse.RESPONDED_TO: 7,
        dimse.DATASET_TYPE: dimse.NO_DATASET,
        dimse.STATUS: 0xB000,
        dimse.AFFECTED_SOP_INSTANCE: ODD_UID,
    }
    assert not dimse.has_dataset(answer)


def test_response_leaves_out_what_the_request_did_not_have() -> None:
    answer = dimse.decode(dimse.response(dimse.C_ECHO_RSP, {dimse.COMMAND_FIELD: 0x30}, 0))
    assert dimse.AFFECTED_SOP_CLASS not in answer
    assert dimse.AFFECTED_SOP_INSTANCE not in answer
    assert dimse.ERROR_COMMENT not in answer
    assert answer[dimse.RESPONDED_TO] == 0


def test_response_truncates_the_error_comment_to_64_characters() -> None:
    answer = dimse.decode(dimse.response(dimse.C_STORE_RSP, {}, 0xA700, "x" * 100))
    assert answer[dimse.ERROR_COMMENT] == "x" * 64


def test_response_pads_an_odd_error_comment_to_an_even_length() -> None:
    raw = dimse.response(dimse.C_STORE_RSP, {}, 0xA700, "x" * 63)
    values = dict((element, value) for _, element, value in _elements(raw))
    assert values[dimse.ERROR_COMMENT] == b"x" * 63 + b" "


def test_response_adds_extra_elements() -> None:
    request: dimse.Command = {dimse.COMMAND_FIELD: dimse.N_EVENT_REPORT_RQ, dimse.MESSAGE_ID: 3,
               dimse.EVENT_TYPE: 2}
    answer = dimse.decode(dimse.response(dimse.N_EVENT_REPORT_RSP, request, 0,
                                         extra={dimse.EVENT_TYPE: 2}))
    assert (answer[dimse.EVENT_TYPE], answer[dimse.RESPONDED_TO]) == (2, 3)


def test_response_to_a_message_id_of_the_wrong_length_answers_zero() -> None:
    request = dimse.decode(dimse.encode({dimse.COMMAND_FIELD: 1,
                                         dimse.MESSAGE_ID: b"\x07\x00\x00\x00"}))
    answer = dimse.decode(dimse.response(dimse.C_STORE_RSP, request, 0))
    assert answer[dimse.RESPONDED_TO] == 0


def test_response_replaces_non_ascii_comment_characters() -> None:
    answer = dimse.decode(dimse.response(dimse.C_STORE_RSP, {}, 0xA700,
                                         "spool full in /données/spöol"))
    assert answer[dimse.ERROR_COMMENT] == "spool full in /donn?es/sp?ol"


# -- pydicom and pynetdicom parity ---------------------------------------------------------------


def test_our_command_reads_with_pydicom_to_the_same_values() -> None:
    raw = dimse.encode(STORE)
    ds = _read_with_pydicom(raw)
    assert ds.CommandGroupLength == len(raw) - 12
    assert ds.AffectedSOPClassUID == CT
    assert ds.CommandField == dimse.C_STORE_RQ
    assert ds.MessageID == 7
    assert ds.Priority == 2
    assert ds.CommandDataSetType == dimse.HAS_DATASET
    assert ds.AffectedSOPInstanceUID == ODD_UID
    assert ds.MoveOriginatorApplicationEntityTitle == "MOVER"
    assert ds.MoveOriginatorMessageID == 65535


def test_a_command_written_by_pydicom_decodes_with_ours() -> None:
    ds = Dataset()
    ds.AffectedSOPClassUID = CT
    ds.CommandField = dimse.C_STORE_RSP
    ds.MessageIDBeingRespondedTo = 12
    ds.CommandDataSetType = dimse.NO_DATASET
    ds.Status = 0xC000
    ds.ErrorComment = "cannot understand"
    ds.AffectedSOPInstanceUID = ODD_UID
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, True
    write_dataset(body, ds)
    ds.CommandGroupLength = len(body.getvalue())
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, True
    write_dataset(out, ds)
    assert out.getvalue() == dimse.encode({element.tag.element: element.value
                                           for element in ds if element.tag.element})
    assert dimse.decode(out.getvalue()) == {
        dimse.GROUP_LENGTH: len(body.getvalue()),
        dimse.AFFECTED_SOP_CLASS: CT,
        dimse.COMMAND_FIELD: dimse.C_STORE_RSP,
        dimse.RESPONDED_TO: 12,
        dimse.DATASET_TYPE: dimse.NO_DATASET,
        dimse.STATUS: 0xC000,
        dimse.ERROR_COMMENT: "cannot understand",
        dimse.AFFECTED_SOP_INSTANCE: ODD_UID,
    }


def test_pynetdicom_c_store_p_data_pdus_decode_with_our_pdv_and_command_codecs() -> None:
    primitive = dimse_primitives.C_STORE()
    primitive.MessageID = 7
    primitive.AffectedSOPClassUID = CT
    primitive.AffectedSOPInstanceUID = ODD_UID
    primitive.Priority = 2
    primitive.MoveOriginatorApplicationEntityTitle = "MOVER"
    primitive.MoveOriginatorMessageID = 3
    dataset = Dataset()
    dataset.PatientName = "DOE^JOHN"
    dataset.SOPInstanceUID = ODD_UID
    data = pn_encode(dataset, True, True)
    assert data is not None
    primitive.DataSet = BytesIO(data)
    message = dimse_messages.C_STORE_RQ()
    message.primitive_to_message(primitive)
    command_parts: list[bytes] = []
    data_parts: list[bytes] = []
    controls: list[int] = []
    for p_data in message.encode_msg(5, 64):  # a small maximum: several PDVs each
        tf = pn_pdu.P_DATA_TF()
        tf.from_primitive(p_data)
        raw = tf.encode()
        pdu_type, length = pdu.read_header(raw)
        assert (pdu_type, length) == (pdu.P_DATA_TF, len(raw) - 6)
        for context_id, control, fragment in pdu.iter_pdvs(memoryview(raw)[6:]):
            assert context_id == 5
            controls.append(control)
            (command_parts if control & pdu.PDV_COMMAND else data_parts).append(bytes(fragment))
    assert len(command_parts) > 1
    assert controls.count(pdu.PDV_COMMAND | pdu.PDV_LAST) == 1
    assert controls.count(pdu.PDV_LAST) == 1
    command = dimse.decode(b"".join(command_parts))
    assert command[dimse.COMMAND_FIELD] == dimse.C_STORE_RQ
    assert command[dimse.MESSAGE_ID] == 7
    assert command[dimse.AFFECTED_SOP_CLASS] == CT
    assert command[dimse.AFFECTED_SOP_INSTANCE] == ODD_UID
    assert command[dimse.PRIORITY] == 2
    assert command[dimse.MOVE_ORIGINATOR_AE] == "MOVER"
    assert command[dimse.MOVE_ORIGINATOR_ID] == 3
    assert dimse.has_dataset(command)
    assert b"".join(data_parts) == data


# -- malformed input -----------------------------------------------------------------------------

_FIELD = struct.pack("<HHL", 0, 0x0100, 2) + b"\x01\x00"
_MALFORMED = {
    "empty": b"",
    "truncated element header": _FIELD + b"\x00\x00\x02\x00\x02",
    "value overrunning the command set": _FIELD + struct.pack("<HHL", 0, 0x0110, 4) + b"\x01",
    "undefined length": _FIELD + struct.pack("<HHL", 0, 0x0110, 0xFFFFFFFF),
    "element of group 0002": _FIELD + struct.pack("<HHL", 2, 0x0010, 2) + b"1\x00",
    "element of group 0008": struct.pack("<HHL", 8, 0x0016, 2) + b"1\x00" + _FIELD,
    "no command field": struct.pack("<HHL", 0, 0x0110, 2) + b"\x01\x00",
    "non-ASCII SOP instance": _FIELD + struct.pack("<HHL", 0, 0x1000, 2) + b"1\xe9",
    "non-ASCII error comment": _FIELD + struct.pack("<HHL", 0, 0x0902, 2) + b"\xc3\xa9",
}


@pytest.mark.parametrize("raw", _MALFORMED.values(), ids=_MALFORMED.keys())
def test_malformed_command_set_raises_dimse_error(raw: bytes) -> None:
    with pytest.raises(DimseError):
        dimse.decode(raw)


@given(st.one_of(st.binary(max_size=120), st.binary(max_size=80).map(lambda tail: _FIELD + tail)))
@settings(max_examples=300, deadline=None)
def test_random_bytes_to_decode_raise_only_dimse_error(raw: bytes) -> None:
    with contextlib.suppress(DimseError):
        dimse.decode(raw)
