"""DIMSE command sets (PS3.7 section 9.3, 10.3): group 0000 in Implicit VR Little Endian.

A command set is read into a `Command` (a dict from element number to value: int for
US/UL, str for UI/AE/LO, bytes for anything else) and written back from one. Only the
messages the lean upper layer exchanges are named here; any element is carried.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

C_STORE_RQ, C_STORE_RSP = 0x0001, 0x8001
C_ECHO_RQ, C_ECHO_RSP = 0x0030, 0x8030
N_EVENT_REPORT_RQ, N_EVENT_REPORT_RSP = 0x0100, 0x8100
N_ACTION_RQ, N_ACTION_RSP = 0x0130, 0x8130
C_CANCEL_RQ = 0x0FFF

NO_DATASET = 0x0101  # Command Data Set Type: no data set follows
HAS_DATASET = 0x0000  # (any other value means a data set follows)

GROUP_LENGTH = 0x0000
AFFECTED_SOP_CLASS = 0x0002
REQUESTED_SOP_CLASS = 0x0003
COMMAND_FIELD = 0x0100
MESSAGE_ID = 0x0110
RESPONDED_TO = 0x0120
MOVE_DESTINATION = 0x0600
PRIORITY = 0x0700
DATASET_TYPE = 0x0800
STATUS = 0x0900
ERROR_COMMENT = 0x0902
AFFECTED_SOP_INSTANCE = 0x1000
REQUESTED_SOP_INSTANCE = 0x1001
EVENT_TYPE = 0x1002
ACTION_TYPE = 0x1008
MOVE_ORIGINATOR_AE = 0x1030
MOVE_ORIGINATOR_ID = 0x1031

_US = frozenset({0x0100, 0x0110, 0x0120, 0x0700, 0x0800, 0x0900, 0x0903, 0x1002, 0x1005,
                 0x1008, 0x1020, 0x1021, 0x1022, 0x1023, 0x1031})
_UL = frozenset({0x0000})
_TEXT = frozenset({0x0002, 0x0003, 0x0600, 0x0902, 0x1000, 0x1001, 0x1030})
_ELEMENT = struct.Struct("<HHL")

Command = dict[int, int | str | bytes]


class DimseError(ValueError):
    """A command set that cannot be read."""


def decode(raw: bytes | bytearray | memoryview) -> Command:
    """The elements of an encoded command set, by element number (group 0000 only)."""
    data = bytes(raw)
    command: Command = {}
    offset, end = 0, len(data)
    while offset < end:
        if end - offset < 8:
            raise DimseError("a truncated command element")
        group, element, length = _ELEMENT.unpack_from(data, offset)
        offset += 8
        if group != 0 or length > end - offset:
            raise DimseError(f"element ({group:04X},{element:04X}) is not a command element "
                             f"or overruns the command set")
        command[element] = _value(element, data[offset: offset + length])
        offset += length
    if COMMAND_FIELD not in command:
        raise DimseError("a command set without Command Field (0000,0100)")
    return command


def encode(elements: Mapping[int, int | str | bytes]) -> bytes:
    """An encoded command set, elements in order, with its group length first."""
    body = b"".join(_element(number, value) for number, value in sorted(elements.items())
                    if number != GROUP_LENGTH)
    return _ELEMENT.pack(0, GROUP_LENGTH, 4) + struct.pack("<L", len(body)) + body


def has_dataset(command: Command) -> bool:
    """Whether a data set follows the command."""
    return command.get(DATASET_TYPE, NO_DATASET) != NO_DATASET


def response(command_field: int, request: Command, status: int, comment: str = "",
             extra: Mapping[int, int | str | bytes] | None = None) -> bytes:
    """The encoded response (no data set) to `request`, echoing its SOP class and instance."""
    message_id = request.get(MESSAGE_ID)  # bytes when its length was wrong
    elements: dict[int, int | str | bytes] = {
        COMMAND_FIELD: command_field,
        RESPONDED_TO: message_id if isinstance(message_id, int) else 0,
        DATASET_TYPE: NO_DATASET,
        STATUS: status,
    }
    for number in (AFFECTED_SOP_CLASS, AFFECTED_SOP_INSTANCE):
        if number in request:
            elements[number] = request[number]
    if comment:
        # the command set's repertoire is ASCII: a non-ASCII comment (a path, an error
        # message) must not make the response unencodable
        elements[ERROR_COMMENT] = comment.encode("ascii", "replace").decode("ascii")[:64]
    elements.update(extra or {})
    return encode(elements)


def text(command: Command, number: int) -> str:
    """A text element's value, "" when absent."""
    value = command.get(number, "")
    return value if isinstance(value, str) else ""


def number(command: Command, element: int) -> int | None:
    """A US/UL element's value, None when absent."""
    value = command.get(element)
    return value if isinstance(value, int) else None


def _value(element: int, raw: bytes) -> int | str | bytes:
    if element in _US and len(raw) == 2:
        return int.from_bytes(raw, "little")
    if element in _UL and len(raw) == 4:
        return int.from_bytes(raw, "little")
    if element in _TEXT:
        try:
            return raw.decode("ascii").strip(" \0")
        except UnicodeDecodeError as error:
            raise DimseError(f"(0000,{element:04X}) is not ASCII") from error
    return raw


def _element(number: int, value: int | str | bytes) -> bytes:
    if isinstance(value, int):
        raw = struct.pack("<L" if number in _UL else "<H", value)
    elif isinstance(value, str):
        raw = value.encode("ascii")
        if len(raw) % 2:
            raw += b"\0" if number in (0x0002, 0x0003, 0x1000, 0x1001) else b" "
    else:
        raw = value
    return _ELEMENT.pack(0, number, len(raw)) + raw
