"""The upper layer PDU codec: round trips, exact bytes, malformed input, pynetdicom parity."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.uid import UID
from pynetdicom import pdu as pn_pdu
from pynetdicom import pdu_primitives as pn_prim
from pynetdicom.presentation import PresentationContext

from runner.dicom.ul import pdu
from runner.dicom.ul.pdu import (
    AssociateAccept,
    AssociateReject,
    AssociateRequest,
    ContextResult,
    PduError,
    ProposedContext,
)

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
VERIFICATION = "1.2.840.10008.1.1"
STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
IMPLICIT = IMPLICIT_LE.encode()

REQUEST = AssociateRequest(
    called_ae="ARCHIVE",
    calling_ae="PACSMIG",
    contexts=(
        ProposedContext(1, CT, (EXPLICIT_LE, IMPLICIT_LE)),
        ProposedContext(3, VERIFICATION, (IMPLICIT_LE,)),
        ProposedContext(255, STORAGE_COMMITMENT, (IMPLICIT_LE,)),
    ),
    max_pdu=16384,
    roles={STORAGE_COMMITMENT: (False, True), CT: (True, True)},
    implementation_class_uid="1.2.3.4.5",
    implementation_version="SOME_VERSION",
)

ACCEPT = AssociateAccept(
    called_ae="ARCHIVE",
    calling_ae="PACSMIG",
    contexts=(
        ContextResult(1, pdu.ACCEPTANCE, EXPLICIT_LE),
        ContextResult(3, pdu.ABSTRACT_SYNTAX_NOT_SUPPORTED),
        ContextResult(5, pdu.TRANSFER_SYNTAXES_NOT_SUPPORTED),
    ),
    max_pdu=65536,
    roles={STORAGE_COMMITMENT: (False, True)},
    implementation_class_uid="1.2.3.4.6",
    implementation_version="OTHER",
)


def _body(raw: bytes, pdu_type: int) -> bytes:
    """The body of one encoded PDU, checking its header against its size."""
    assert pdu.read_header(raw) == (pdu_type, len(raw) - 6)
    return raw[6:]


def _item(item_type: int, value: bytes) -> bytes:
    return struct.pack(">BxH", item_type, len(value)) + value


def _fixed(called: bytes = b"ARCHIVE".ljust(16), calling: bytes = b"PACSMIG".ljust(16)) -> bytes:
    return b"\x00\x01\x00\x00" + called + calling + bytes(32)


def _user(*sub_items: bytes) -> bytes:
    return _item(0x50, b"".join(sub_items))


# -- round trips ---------------------------------------------------------------------------------


def test_request_round_trips_contexts_max_pdu_roles_and_implementation() -> None:
    decoded = pdu.decode_request(_body(pdu.encode_request(REQUEST), pdu.ASSOCIATE_RQ))
    assert decoded == REQUEST


def test_accept_round_trips_accepted_and_refused_contexts() -> None:
    decoded = pdu.decode_accept(_body(pdu.encode_accept(ACCEPT), pdu.ASSOCIATE_AC))
    assert decoded == ACCEPT
    assert [c.transfer_syntax for c in decoded.contexts] == [EXPLICIT_LE, "", ""]


def test_request_defaults_announce_pacsmig_and_no_limit() -> None:
    request = AssociateRequest("A", "B", (ProposedContext(1, VERIFICATION, (IMPLICIT_LE,)),))
    decoded = pdu.decode_request(_body(pdu.encode_request(request), pdu.ASSOCIATE_RQ))
    assert decoded.implementation_class_uid == pdu.IMPLEMENTATION_CLASS_UID
    assert decoded.implementation_version == pdu.IMPLEMENTATION_VERSION
    assert decoded.application_context == pdu.APPLICATION_CONTEXT
    assert decoded.max_pdu == 0
    assert decoded.roles == {}
    assert decoded.protocol_version == 1


def test_request_round_trips_a_maximum_length_of_2_to_the_32_minus_1() -> None:
    request = AssociateRequest("A", "B", (), max_pdu=0xFFFFFFFF)
    assert pdu.decode_request(pdu.encode_request(request)[6:]).max_pdu == 0xFFFFFFFF


def test_empty_implementation_version_is_left_out_of_the_user_information() -> None:
    request = AssociateRequest("A", "B", (), implementation_version="")
    raw = pdu.encode_request(request)
    assert b"\x55\x00" not in raw[68 + 6:]
    assert pdu.decode_request(raw[6:]).implementation_version == ""


def test_implementation_version_longer_than_16_characters_is_cut_to_16() -> None:
    request = AssociateRequest("A", "B", (), implementation_version="V" * 20)
    assert pdu.decode_request(pdu.encode_request(request)[6:]).implementation_version == "V" * 16


def test_ae_titles_are_space_padded_to_16_bytes_and_stripped_when_decoded() -> None:
    raw = pdu.encode_request(AssociateRequest("ARCHIVE", "MIG", ()))
    assert raw[6:10] == b"\x00\x01\x00\x00"
    assert raw[10:26] == b"ARCHIVE         "
    assert raw[26:42] == b"MIG             "
    assert raw[42:74] == bytes(32)
    decoded = pdu.decode_request(raw[6:])
    assert (decoded.called_ae, decoded.calling_ae) == ("ARCHIVE", "MIG")


def test_a_16_character_ae_title_fills_its_field() -> None:
    title = "A" * 16
    decoded = pdu.decode_accept(pdu.encode_accept(AssociateAccept(title, title, ()))[6:])
    assert (decoded.called_ae, decoded.calling_ae) == (title, title)


@pytest.mark.parametrize("title", ["", "A" * 17])
def test_encoding_an_empty_or_17_character_ae_title_raises_pdu_error(title: str) -> None:
    with pytest.raises(PduError):
        pdu.encode_request(AssociateRequest(title, "MIG", ()))


def test_uids_padded_with_nul_by_a_peer_decode_without_the_padding() -> None:
    context = _item(0x20, b"\x01\x00\x00\x00" + _item(0x30, b"1.2.3\x00")
                    + _item(0x40, b"1.2.840.10008.1.2\x00"))
    body = _fixed() + _item(0x10, b"1.2.840.10008.3.1.1.1\x00") + context + _user(
        _item(0x51, struct.pack(">L", 1000)), _item(0x52, b"1.2.3.4.5\x00"))
    decoded = pdu.decode_request(body)
    assert decoded.application_context == pdu.APPLICATION_CONTEXT
    assert decoded.contexts == (ProposedContext(1, "1.2.3", (IMPLICIT_LE,)),)
    assert decoded.implementation_class_uid == "1.2.3.4.5"
    assert decoded.max_pdu == 1000


def test_unknown_items_and_user_information_sub_items_are_read_past() -> None:
    async_window = _item(0x53, b"\x00\x01\x00\x01")
    user_identity = _item(0x58, b"\x01\x00\x00\x04user\x00\x00")
    body = (_fixed() + _item(0x10, pdu.APPLICATION_CONTEXT.encode()) + _item(0x77, b"junk")
            + _item(0x20, b"\x07\x00\x00\x00" + _item(0x30, b"1.2") + _item(0x40, IMPLICIT))
            + _user(_item(0x51, struct.pack(">L", 4096)), async_window, user_identity,
                    _item(0x52, b"1.2.3")))
    decoded = pdu.decode_request(body)
    assert decoded.contexts == (ProposedContext(7, "1.2", (IMPLICIT_LE,)),)
    assert (decoded.max_pdu, decoded.implementation_class_uid) == (4096, "1.2.3")


def test_a_request_without_user_information_decodes_with_empty_values() -> None:
    decoded = pdu.decode_request(_fixed())
    assert decoded.contexts == ()
    assert (decoded.max_pdu, decoded.implementation_class_uid, decoded.application_context) \
        == (0, "", "")


# -- fixed-size PDUs -----------------------------------------------------------------------------


def test_reject_is_the_ten_standard_bytes_and_round_trips() -> None:
    reject = AssociateReject(pdu.REJECTED_PERMANENT, pdu.SOURCE_USER, pdu.REASON_CALLED_AE)
    raw = pdu.encode_reject(reject)
    assert raw == b"\x03\x00\x00\x00\x00\x04\x00\x01\x01\x07"
    assert pdu.decode_reject(raw[6:]) == reject


def test_abort_is_the_ten_standard_bytes_and_decodes_to_source_and_reason() -> None:
    raw = pdu.abort(pdu.ABORT_SOURCE_PROVIDER, pdu.ABORT_INVALID_PARAMETER)
    assert raw == b"\x07\x00\x00\x00\x00\x04\x00\x00\x02\x06"
    assert pdu.decode_abort(raw[6:]) == (2, 6)
    assert pdu.abort() == b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00"


def test_release_request_and_reply_are_the_ten_standard_bytes() -> None:
    assert pdu.release_rq() == b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"
    assert pdu.release_rp() == b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x00"


def test_header_reads_type_and_32_bit_length() -> None:
    assert pdu.header(pdu.P_DATA_TF, 0x01020304) == b"\x04\x00\x01\x02\x03\x04"
    assert pdu.read_header(bytearray(b"\x04\x00\xff\xff\xff\xff")) == (4, 0xFFFFFFFF)


# -- P-DATA-TF -----------------------------------------------------------------------------------


def test_pdata_header_announces_the_pdu_and_pdv_lengths() -> None:
    raw = pdu.pdata_header(5, pdu.PDV_COMMAND | pdu.PDV_LAST, 10)
    assert raw == b"\x04\x00\x00\x00\x00\x10" + b"\x00\x00\x00\x0c\x05\x03"


def test_iter_pdvs_yields_each_pdv_of_a_multi_pdv_body() -> None:
    pdvs = [(1, pdu.PDV_COMMAND, b"cmd-part-1"), (1, pdu.PDV_COMMAND | pdu.PDV_LAST, b"c2"),
            (1, 0, b""), (3, pdu.PDV_LAST, bytes(range(256)) * 3)]
    body = b"".join(pdu.pdata_header(cid, control, len(data))[6:] + data
                    for cid, control, data in pdvs)
    got = [(cid, control, bytes(data)) for cid, control, data in pdu.iter_pdvs(memoryview(body))]
    assert got == pdvs



def test_iter_pdvs_yields_views_into_the_body_without_copying() -> None:
    body = bytearray(pdu.pdata_header(1, pdu.PDV_LAST, 4)[6:] + b"abcd")
    (_, _, data), = pdu.iter_pdvs(memoryview(body))
    body[-1] = ord("z")
    assert bytes(data) == b"abcz"


# -- malformed input -----------------------------------------------------------------------------

def _malformed(context: int) -> dict[str, bytes]:
    """Associate bodies that are wrong in one way; `context` is 0x20 (RQ) or 0x21 (AC)."""
    valid_context = _item(context, b"\x01\x00\x00\x00" + _item(0x40, b"1.2"))
    cases = {
        "empty body": b"",
        "short fixed fields": _fixed()[:67],
        "truncated item header": _fixed() + b"\x10\x00\x00",
        "item overrunning the PDU": _fixed() + b"\x10\x00\x00\x20" + b"1.2.3",
        "item length 0xFFFF overrunning": _fixed() + b"\x50\x00\xff\xff" + bytes(10),
        "non-ASCII called AE title": _fixed(called=b"ARCH\xc9VE".ljust(16)),
        "non-ASCII calling AE title": _fixed(calling=b"\xff" * 16),
        "non-ASCII application context": _fixed() + _item(0x10, b"1.2.\x80"),
        "context item shorter than 4": _fixed() + _item(context, b"\x01\x00\x00"),
        "context sub-item overrunning": _fixed() + _item(
            context, b"\x01\x00\x00\x00" + b"\x40\x00\x00\x09" + b"1.2"),
        "context sub-item truncated": _fixed() + _item(context, b"\x01\x00\x00\x00\x40\x00"),
        "non-ASCII transfer syntax": _fixed() + _item(
            context, b"\x01\x00\x00\x00" + _item(0x40, b"\xe9")),
        "maximum length of 2 bytes": _fixed() + _user(_item(0x51, b"\x40\x00")),
        "maximum length of 5 bytes": _fixed() + _user(_item(0x51, b"\x00\x00\x40\x00\x00")),
        "user sub-item overrunning": _fixed() + _user(b"\x52\x00\x00\x10" + b"1.2"),
        "non-ASCII implementation UID": _fixed() + _user(_item(0x52, b"1.2.\xff")),
        "non-ASCII implementation version": _fixed() + _user(_item(0x55, b"V\x80")),
        "role sub-item shorter than 4": _fixed() + _user(_item(0x54, b"\x00\x03")),
        "role UID length overrunning": _fixed() + _user(
            _item(0x54, b"\x00\x09" + b"1.2" + b"\x01\x00")),
        "role sub-item too long": _fixed() + _user(
            _item(0x54, b"\x00\x03" + b"1.2" + b"\x01\x00\x00")),
        "role sub-item missing a role": _fixed() + _user(
            _item(0x54, b"\x00\x03" + b"1.2" + b"\x01")),
        "non-ASCII role UID": _fixed() + _user(_item(0x54, b"\x00\x03" + b"1.\xe9" + b"\x01\x00")),
        "bad item after a valid one": _fixed() + valid_context + b"\x20\x00\x01",
    }
    if context == 0x20:
        cases["non-ASCII abstract syntax"] = _fixed() + _item(
            context, b"\x01\x00\x00\x00" + _item(0x30, b"1.\xe9"))
    return cases


_MALFORMED_RQ, _MALFORMED_AC = _malformed(0x20), _malformed(0x21)


@pytest.mark.parametrize("body", _MALFORMED_RQ.values(), ids=_MALFORMED_RQ.keys())
def test_malformed_request_raises_pdu_error(body: bytes) -> None:
    with pytest.raises(PduError):
        pdu.decode_request(body)


@pytest.mark.parametrize("body", _MALFORMED_AC.values(), ids=_MALFORMED_AC.keys())
def test_malformed_accept_raises_pdu_error(body: bytes) -> None:
    with pytest.raises(PduError):
        pdu.decode_accept(body)


_MALFORMED_PDV = {
    "truncated PDV header": b"\x00\x00\x00\x02\x01",
    "PDV length below 2": b"\x00\x00\x00\x01\x01\x03",
    "PDV length 0": b"\x00\x00\x00\x00\x01\x03",
    "PDV length 1 then a valid PDV": b"\x00\x00\x00\x01\x00" + b"\x00\x00\x00\x02\x01\x03",
    "PDV overrunning the PDU": b"\x00\x00\x00\x0a\x01\x03abc",
    "PDV length 0xFFFFFFFF": b"\xff\xff\xff\xff\x01\x03abc",
    "trailing bytes after a PDV": b"\x00\x00\x00\x03\x01\x03a" + b"\x00\x00",
}


@pytest.mark.parametrize("body", _MALFORMED_PDV.values(), ids=_MALFORMED_PDV.keys())
def test_malformed_pdata_body_raises_pdu_error(body: bytes) -> None:
    with pytest.raises(PduError):
        list(pdu.iter_pdvs(memoryview(body)))


@pytest.mark.parametrize(("decoder", "body"), [
    (pdu.decode_abort, b"\x00\x00\x02"),
    (pdu.decode_abort, b"\x00\x00\x02\x06\x00"),
    (pdu.decode_reject, b""),
    (pdu.decode_reject, b"\x00\x01\x01\x07\x00"),
    (pdu.read_header, b"\x04\x00\x00\x00\x00"),
], ids=["short abort", "long abort", "empty reject", "long reject", "5-byte header"])
def test_short_or_long_fixed_pdus_raise_pdu_error(decoder: Callable[[bytes], Any],
                                                  body: bytes) -> None:
    with pytest.raises(PduError):
        decoder(body)


@pytest.mark.parametrize(("decoder", "raw"), [
    (pdu.decode_request, pdu.encode_request(REQUEST)[6:]),
    (pdu.decode_accept, pdu.encode_accept(ACCEPT)[6:]),
], ids=["request", "accept"])
def test_every_truncation_of_a_valid_pdu_decodes_or_raises_pdu_error(
        decoder: Callable[[bytes], Any], raw: bytes) -> None:
    failures = 0
    for size in range(len(raw)):
        try:
            decoder(raw[:size])
        except PduError:
            failures += 1
    assert failures > len(raw) // 2  # most cuts land inside an item or the fixed fields


# -- pynetdicom parity ---------------------------------------------------------------------------


def test_our_request_decodes_in_pynetdicom_to_the_same_values() -> None:
    theirs = pn_pdu.A_ASSOCIATE_RQ()
    theirs.decode(pdu.encode_request(REQUEST))
    assert theirs.called_ae_title == REQUEST.called_ae
    assert theirs.calling_ae_title == REQUEST.calling_ae
    assert theirs.protocol_version == 1
    assert theirs.application_context_name == pdu.APPLICATION_CONTEXT
    contexts = [(c.context_id, c.abstract_syntax, tuple(c.transfer_syntax))
                for c in theirs.presentation_context]
    assert contexts == [(c.context_id, c.abstract_syntax, c.transfer_syntaxes)
                        for c in REQUEST.contexts]
    user = theirs.user_information
    assert user is not None
    assert user.maximum_length == REQUEST.max_pdu
    assert user.implementation_class_uid == REQUEST.implementation_class_uid
    assert user.implementation_version_name == REQUEST.implementation_version
    roles = {uid: (bool(item.scu_role), bool(item.scp_role))
             for uid, item in user.role_selection.items()}
    assert roles == REQUEST.roles
    assert theirs.encode() == pdu.encode_request(REQUEST)


def _pynetdicom_associate(result_contexts: list[PresentationContext] | None = None,
                          proposed: list[PresentationContext] | None = None) -> Any:
    primitive = pn_prim.A_ASSOCIATE()
    primitive.application_context_name = pdu.APPLICATION_CONTEXT
    primitive.called_ae_title = "ARCHIVE"
    primitive.calling_ae_title = "STORESCU"
    maximum = pn_prim.MaximumLengthNotification()
    maximum.maximum_length_received = 32768
    class_uid = pn_prim.ImplementationClassUIDNotification()
    class_uid.implementation_class_uid = "1.2.826.0.1.3680043.9.3811.3.0.4"
    version = pn_prim.ImplementationVersionNameNotification()
    version.implementation_version_name = "PYNETDICOM_304"
    role = pn_prim.SCP_SCU_RoleSelectionNegotiation()
    role.sop_class_uid = STORAGE_COMMITMENT
    role.scu_role, role.scp_role = False, True
    window = pn_prim.AsynchronousOperationsWindowNegotiation()
    window.maximum_number_operations_invoked = 5
    window.maximum_number_operations_performed = 5
    primitive.user_information = [maximum, class_uid, version, role, window]
    if result_contexts is not None:
        primitive.result = 0
        primitive.presentation_context_definition_results_list = result_contexts
    if proposed is not None:
        primitive.presentation_context_definition_list = proposed
    return primitive


def _context(context_id: int, abstract: str, syntaxes: list[str | bytes | UID],
             result: int | None = None) -> PresentationContext:
    context = PresentationContext()
    context.context_id = context_id
    context.abstract_syntax = abstract
    context.transfer_syntax = syntaxes
    if result is not None:
        context.result = result
    return context


def test_pynetdicom_accept_decodes_with_ours_to_the_same_values() -> None:
    theirs = pn_pdu.A_ASSOCIATE_AC()
    theirs.from_primitive(_pynetdicom_associate(result_contexts=[
        _context(1, CT, [EXPLICIT_LE], pdu.ACCEPTANCE),
        _context(3, MR, [IMPLICIT_LE], pdu.ABSTRACT_SYNTAX_NOT_SUPPORTED),
    ]))
    decoded = pdu.decode_accept(_body(theirs.encode(), pdu.ASSOCIATE_AC))
    assert (decoded.called_ae, decoded.calling_ae) == ("ARCHIVE", "STORESCU")
    assert decoded.application_context == pdu.APPLICATION_CONTEXT
    assert decoded.contexts[0] == ContextResult(1, pdu.ACCEPTANCE, EXPLICIT_LE)
    assert (decoded.contexts[1].context_id, decoded.contexts[1].result) \
        == (3, pdu.ABSTRACT_SYNTAX_NOT_SUPPORTED)
    assert decoded.max_pdu == 32768
    assert decoded.roles == {STORAGE_COMMITMENT: (False, True)}
    assert decoded.implementation_class_uid == "1.2.826.0.1.3680043.9.3811.3.0.4"
    assert decoded.implementation_version == "PYNETDICOM_304"


def test_pynetdicom_request_decodes_with_ours_past_its_async_window() -> None:
    theirs = pn_pdu.A_ASSOCIATE_RQ()
    theirs.from_primitive(_pynetdicom_associate(proposed=[
        _context(1, CT, [EXPLICIT_LE, IMPLICIT_LE]), _context(3, VERIFICATION, [IMPLICIT_LE])]))
    decoded = pdu.decode_request(_body(theirs.encode(), pdu.ASSOCIATE_RQ))
    assert decoded.contexts == (ProposedContext(1, CT, (EXPLICIT_LE, IMPLICIT_LE)),
                                ProposedContext(3, VERIFICATION, (IMPLICIT_LE,)))
    assert decoded.max_pdu == 32768
    assert decoded.roles == {STORAGE_COMMITMENT: (False, True)}
    assert decoded.implementation_version == "PYNETDICOM_304"


def test_our_accept_decodes_in_pynetdicom_including_refused_contexts() -> None:
    theirs = pn_pdu.A_ASSOCIATE_AC()
    theirs.decode(pdu.encode_accept(ACCEPT))
    results = [(c.context_id, c.result) for c in theirs.presentation_context]
    assert results == [(1, 0), (3, 3), (5, 4)]
    assert theirs.presentation_context[0].transfer_syntax == EXPLICIT_LE
    user = theirs.user_information
    assert user is not None
    assert user.maximum_length == ACCEPT.max_pdu
    assert user.implementation_class_uid == ACCEPT.implementation_class_uid
    assert user.implementation_version_name == ACCEPT.implementation_version
    assert {uid: (item.scu_role, item.scp_role) for uid, item in user.role_selection.items()} \
        == {STORAGE_COMMITMENT: (False, True)}


def test_pynetdicom_fixed_pdus_equal_ours() -> None:
    reject = pn_pdu.A_ASSOCIATE_RJ()
    reject.decode(pdu.encode_reject(AssociateReject(2, 3, 2)))
    assert (reject.result, reject.source, reject.reason_diagnostic) == (2, 3, 2)
    aborted = pn_pdu.A_ABORT_RQ()
    aborted.decode(pdu.abort(pdu.ABORT_SOURCE_PROVIDER, pdu.ABORT_UNEXPECTED_PDU))
    assert (aborted.source, aborted.reason_diagnostic) == (2, 2)
    assert pn_pdu.A_RELEASE_RQ().encode() == pdu.release_rq()
    assert pn_pdu.A_RELEASE_RP().encode() == pdu.release_rp()


# -- fuzz ----------------------------------------------------------------------------------------

_SEEDS = [pdu.encode_request(REQUEST)[6:], pdu.encode_accept(ACCEPT)[6:]]


def _only_pdu_error(call: Callable[[], object]) -> None:
    with contextlib.suppress(PduError):
        call()


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """A valid associate body with a few bytes changed, cut, or inserted."""
    raw = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw)))
        action = draw(st.sampled_from(["set", "cut", "insert"]))
        if action == "set" and at < len(raw):
            raw[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del raw[at:]
        else:
            raw[at:at] = draw(st.binary(min_size=1, max_size=4))
    return bytes(raw)


_ASSOCIATE_BYTES = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=200).map(lambda tail: _fixed() + tail),
    _mutated(),
)


@given(_ASSOCIATE_BYTES)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes_to_decode_request_and_decode_accept_raise_only_pdu_error(
        raw: bytes) -> None:
    _only_pdu_error(lambda: pdu.decode_request(raw))
    _only_pdu_error(lambda: pdu.decode_accept(raw))


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_random_bytes_to_iter_pdvs_raise_only_pdu_error(raw: bytes) -> None:
    _only_pdu_error(lambda: list(pdu.iter_pdvs(memoryview(raw))))


def test_a_p_data_tf_without_a_pdv_is_malformed() -> None:
    from runner.dicom.ul import pdu

    with pytest.raises(pdu.PduError, match="without a PDV"):
        list(pdu.iter_pdvs(memoryview(b"")))
