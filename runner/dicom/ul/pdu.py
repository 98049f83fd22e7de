"""DICOM upper-layer PDUs (PS3.8 section 9.3): pure encoding and decoding, no sockets.

Only what an association needs: A-ASSOCIATE-RQ/-AC/-RJ with presentation contexts, maximum
length, implementation identification and SCP/SCU role selection; P-DATA-TF; A-RELEASE-RQ/-RP
and A-ABORT. Other user-information sub-items (asynchronous operations window, extended
negotiation, user identity) are read past and not answered, which the standard reads as
"not negotiated". Every decoder raises PduError on malformed input and never reads past the
PDU it is given.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

ASSOCIATE_RQ, ASSOCIATE_AC, ASSOCIATE_RJ = 0x01, 0x02, 0x03
P_DATA_TF, RELEASE_RQ, RELEASE_RP, ABORT = 0x04, 0x05, 0x06, 0x07
PDU_TYPES = frozenset(range(0x01, 0x08))

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
# pacsmig's implementation class UID: a UUID-derived UID (PS3.5 B.2), needing no registered root
IMPLEMENTATION_CLASS_UID = "2.25.253909725088120406741159254880367349938"
IMPLEMENTATION_VERSION = "PACSMIG_1"

# Presentation context results (PS3.8 9.3.3.2)
ACCEPTANCE, USER_REJECTION, NO_REASON = 0, 1, 2
ABSTRACT_SYNTAX_NOT_SUPPORTED, TRANSFER_SYNTAXES_NOT_SUPPORTED = 3, 4

# A-ASSOCIATE-RJ (PS3.8 9.3.4): result, source, reason
REJECTED_PERMANENT, REJECTED_TRANSIENT = 1, 2
SOURCE_USER, SOURCE_ACSE, SOURCE_PRESENTATION = 1, 2, 3
REASON_NO_REASON = 1
REASON_APPLICATION_CONTEXT = 2
REASON_CALLING_AE = 3
REASON_CALLED_AE = 7
REASON_PROTOCOL_VERSION = 2  # with SOURCE_ACSE
REASON_LOCAL_LIMIT = 2  # with SOURCE_PRESENTATION
REASON_TEMPORARY_CONGESTION = 1  # with SOURCE_PRESENTATION

# A-ABORT (PS3.8 9.3.8): source and reason
ABORT_SOURCE_USER, ABORT_SOURCE_PROVIDER = 0, 2
ABORT_NOT_SPECIFIED, ABORT_UNEXPECTED_PDU, ABORT_INVALID_PARAMETER = 0, 2, 6
ABORT_UNRECOGNIZED_PDU = 1  # a PDU type PS3.8 does not define (9.3.8)

# The last 2 bits of a PDV's message control header
PDV_COMMAND, PDV_LAST = 0x01, 0x02

_HEADER = struct.Struct(">BxL")
_PDV = struct.Struct(">LBB")
_ITEM = struct.Struct(">BxH")
_FIXED = 68  # protocol version, reserved, called AE, calling AE, 32 reserved


class PduError(ValueError):
    """Bytes that are not a well-formed PDU of the expected kind."""


@dataclass(frozen=True, slots=True)
class ProposedContext:
    """One presentation context of an A-ASSOCIATE-RQ."""

    context_id: int
    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ContextResult:
    """One presentation context of an A-ASSOCIATE-AC: accepted with `transfer_syntax`, or not."""

    context_id: int
    result: int
    transfer_syntax: str = ""


@dataclass(frozen=True, slots=True)
class AssociateRequest:
    """An A-ASSOCIATE-RQ. `roles` maps an abstract syntax to its proposed (SCU, SCP) roles."""

    called_ae: str
    calling_ae: str
    contexts: tuple[ProposedContext, ...]
    max_pdu: int = 0  # what the requestor can receive; 0: no limit
    roles: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    implementation_class_uid: str = IMPLEMENTATION_CLASS_UID
    implementation_version: str = IMPLEMENTATION_VERSION
    application_context: str = APPLICATION_CONTEXT
    protocol_version: int = 1


@dataclass(frozen=True, slots=True)
class AssociateAccept:
    """An A-ASSOCIATE-AC. `roles` maps an abstract syntax to the accepted (SCU, SCP) roles."""

    called_ae: str
    calling_ae: str
    contexts: tuple[ContextResult, ...]
    max_pdu: int = 0  # what the acceptor can receive; 0: no limit
    roles: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    implementation_class_uid: str = IMPLEMENTATION_CLASS_UID
    implementation_version: str = IMPLEMENTATION_VERSION
    application_context: str = APPLICATION_CONTEXT


@dataclass(frozen=True, slots=True)
class AssociateReject:
    """An A-ASSOCIATE-RJ: result (1 permanent, 2 transient), source and reason."""

    result: int
    source: int
    reason: int


def header(pdu_type: int, length: int) -> bytes:
    """The 6-byte header of a PDU."""
    return _HEADER.pack(pdu_type, length)


def read_header(raw: bytes | bytearray | memoryview) -> tuple[int, int]:
    """(PDU type, body length) from the first 6 bytes of a PDU."""
    if len(raw) < 6:
        raise PduError("a PDU header has 6 bytes")
    pdu_type, length = _HEADER.unpack_from(raw)
    return int(pdu_type), int(length)


def pdata_header(context_id: int, control: int, data_length: int) -> bytes:
    """The PDU and PDV headers of a P-DATA-TF holding one PDV of `data_length` bytes."""
    return _HEADER.pack(P_DATA_TF, data_length + 6) + _PDV.pack(data_length + 2, context_id,
                                                                 control)


def iter_pdvs(body: memoryview) -> Iterator[tuple[int, int, memoryview]]:
    """(context id, message control header, data) of each PDV in a P-DATA-TF body."""
    offset, end = 0, len(body)
    if end == 0:
        raise PduError("a P-DATA-TF without a PDV item (PS3.8 9.3.5 requires one or more)")
    while offset < end:
        if end - offset < 6:
            raise PduError("a truncated PDV item")
        length, context_id, control = _PDV.unpack_from(body, offset)
        if length < 2 or offset + 4 + length > end:
            raise PduError(f"a PDV item of {length} bytes does not fit its P-DATA-TF")
        yield context_id, control, body[offset + 6: offset + 4 + length]
        offset += 4 + length


def release_rq() -> bytes:
    """An A-RELEASE-RQ PDU."""
    return _HEADER.pack(RELEASE_RQ, 4) + bytes(4)


def release_rp() -> bytes:
    """An A-RELEASE-RP PDU."""
    return _HEADER.pack(RELEASE_RP, 4) + bytes(4)


def abort(source: int = ABORT_SOURCE_USER, reason: int = ABORT_NOT_SPECIFIED) -> bytes:
    """An A-ABORT PDU."""
    return _HEADER.pack(ABORT, 4) + bytes([0, 0, source, reason])


def decode_abort(body: bytes) -> tuple[int, int]:
    """(source, reason) of an A-ABORT body."""
    if len(body) != 4:
        raise PduError("an A-ABORT body has 4 bytes")
    return body[2], body[3]


def encode_reject(reject: AssociateReject) -> bytes:
    """An A-ASSOCIATE-RJ PDU."""
    return _HEADER.pack(ASSOCIATE_RJ, 4) + bytes([0, reject.result, reject.source,
                                                  reject.reason])


def decode_reject(body: bytes) -> AssociateReject:
    """An A-ASSOCIATE-RJ from its body."""
    if len(body) != 4:
        raise PduError("an A-ASSOCIATE-RJ body has 4 bytes")
    return AssociateReject(body[1], body[2], body[3])


def encode_request(request: AssociateRequest) -> bytes:
    """An A-ASSOCIATE-RQ PDU."""
    items = [_uid_item(0x10, request.application_context)]
    for context in request.contexts:
        sub = _uid_item(0x30, context.abstract_syntax) + b"".join(
            _uid_item(0x40, syntax) for syntax in context.transfer_syntaxes)
        items.append(_item(0x20, bytes([context.context_id, 0, 0, 0]) + sub))
    items.append(_user_info(request.max_pdu, request.roles, request.implementation_class_uid,
                            request.implementation_version))
    return _associate(ASSOCIATE_RQ, request.called_ae, request.calling_ae,
                      request.protocol_version, b"".join(items))


def encode_accept(accept: AssociateAccept) -> bytes:
    """An A-ASSOCIATE-AC PDU."""
    items = [_uid_item(0x10, accept.application_context)]
    for context in accept.contexts:
        # PS3.8 9.3.3.2: the sub-item is there even for a refused context (value not tested)
        sub = _uid_item(0x40, context.transfer_syntax or IMPLICIT_VR_LITTLE_ENDIAN)
        items.append(_item(0x21, bytes([context.context_id, 0, context.result, 0]) + sub))
    items.append(_user_info(accept.max_pdu, accept.roles, accept.implementation_class_uid,
                            accept.implementation_version))
    return _associate(ASSOCIATE_AC, accept.called_ae, accept.calling_ae, 1, b"".join(items))


def decode_request(body: bytes) -> AssociateRequest:
    """An A-ASSOCIATE-RQ from its body."""
    version, called, calling = _fixed(body)
    application, contexts, user = "", [], _UserInfo()
    for item_type, value in _items(body, _FIXED):
        if item_type == 0x10:
            application = _uid(value)
        elif item_type == 0x20:
            contexts.append(_proposed(value))
        elif item_type == 0x50:
            user = _decode_user(value)
    return AssociateRequest(called, calling, tuple(contexts), user.max_pdu, user.roles,
                            user.class_uid, user.version, application, version)


def decode_accept(body: bytes) -> AssociateAccept:
    """An A-ASSOCIATE-AC from its body."""
    _version, called, calling = _fixed(body)
    application, contexts, user = "", [], _UserInfo()
    for item_type, value in _items(body, _FIXED):
        if item_type == 0x10:
            application = _uid(value)
        elif item_type == 0x21:
            contexts.append(_result(value))
        elif item_type == 0x50:
            user = _decode_user(value)
    return AssociateAccept(called, calling, tuple(contexts), user.max_pdu, user.roles,
                           user.class_uid, user.version, application)


@dataclass(slots=True)
class _UserInfo:
    max_pdu: int = 0
    class_uid: str = ""
    version: str = ""
    roles: dict[str, tuple[bool, bool]] = field(default_factory=dict)


def _associate(pdu_type: int, called: str, calling: str, version: int, items: bytes) -> bytes:
    fixed = (struct.pack(">HH", version, 0) + _ae(called) + _ae(calling) + bytes(32))
    return _HEADER.pack(pdu_type, len(fixed) + len(items)) + fixed + items


def _ae(title: str) -> bytes:
    raw = title.encode("ascii")
    if not 0 < len(raw) <= 16:
        raise PduError(f"an AE title has 1 to 16 characters: {title!r}")
    return raw.ljust(16, b" ")


def _item(item_type: int, value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise PduError(f"item 0x{item_type:02X} is too long ({len(value)} bytes)")
    return _ITEM.pack(item_type, len(value)) + value


def _uid_item(item_type: int, uid: str) -> bytes:
    return _item(item_type, uid.encode("ascii"))


def _user_info(max_pdu: int, roles: dict[str, tuple[bool, bool]], class_uid: str,
               version: str) -> bytes:
    sub = [_item(0x51, struct.pack(">L", max_pdu)), _uid_item(0x52, class_uid)]
    for uid, (scu, scp) in roles.items():
        raw = uid.encode("ascii")
        sub.append(_item(0x54, struct.pack(">H", len(raw)) + raw + bytes([scu, scp])))
    if version:
        sub.append(_item(0x55, version.encode("ascii")[:16]))
    return _item(0x50, b"".join(sub))


def _fixed(body: bytes) -> tuple[int, str, str]:
    if len(body) < _FIXED:
        raise PduError("an A-ASSOCIATE PDU is shorter than its fixed fields")
    version = int.from_bytes(body[0:2], "big")
    return version, _text(body[4:20]), _text(body[20:36])


def _items(body: bytes, offset: int) -> Iterator[tuple[int, bytes]]:
    end = len(body)
    while offset < end:
        if end - offset < 4:
            raise PduError("a truncated item")
        item_type, length = _ITEM.unpack_from(body, offset)
        if offset + 4 + length > end:
            raise PduError(f"item 0x{item_type:02X} of {length} bytes overruns its PDU")
        yield item_type, body[offset + 4: offset + 4 + length]
        offset += 4 + length


def _proposed(value: bytes) -> ProposedContext:
    if len(value) < 4:
        raise PduError("a truncated presentation context item")
    abstract, syntaxes = "", []
    for item_type, sub in _items(value, 4):
        if item_type == 0x30:
            abstract = _uid(sub)
        elif item_type == 0x40:
            syntaxes.append(_uid(sub))
    return ProposedContext(value[0], abstract, tuple(syntaxes))


def _result(value: bytes) -> ContextResult:
    if len(value) < 4:
        raise PduError("a truncated presentation context item")
    syntax = ""
    for item_type, sub in _items(value, 4):
        if item_type == 0x40:
            syntax = _uid(sub)
    if value[2] != ACCEPTANCE:
        syntax = ""  # present, but not significant, for a refused context
    return ContextResult(value[0], value[2], syntax)


def _decode_user(value: bytes) -> _UserInfo:
    info = _UserInfo()
    for item_type, sub in _items(value, 0):
        if item_type == 0x51:
            if len(sub) != 4:
                raise PduError("a maximum length sub-item has 4 bytes")
            info.max_pdu = int.from_bytes(sub, "big")
        elif item_type == 0x52:
            info.class_uid = _uid(sub)
        elif item_type == 0x55:
            info.version = _text(sub)
        elif item_type == 0x54:
            uid, roles = _role(sub)
            info.roles[uid] = roles
    return info


def _role(sub: bytes) -> tuple[str, tuple[bool, bool]]:
    if len(sub) < 4:
        raise PduError("a truncated role selection sub-item")
    length = int.from_bytes(sub[0:2], "big")
    if len(sub) != length + 4:
        raise PduError("a role selection sub-item of the wrong length")
    return _uid(sub[2:2 + length]), (bool(sub[2 + length]), bool(sub[3 + length]))


def _uid(raw: bytes) -> str:
    return _text(raw).rstrip("\0")


def _text(raw: bytes) -> str:
    try:
        return raw.decode("ascii").strip(" \0")
    except UnicodeDecodeError as error:
        raise PduError(f"non-ASCII characters where DICOM allows none: {raw!r}") from error
