"""DIMSE status codes sorted into categories, as a table; transport failures as categories too."""

from __future__ import annotations

from enum import StrEnum


class StatusCategory(StrEnum):
    """What an outcome means to the runner; specific failures get their own category."""

    SUCCESS = "success"
    PENDING = "pending"
    WARNING = "warning"
    CANCEL = "cancel"
    FAILURE = "failure"
    OUT_OF_RESOURCES = "out_of_resources"  # 0xA7xx: peer refused, try again later
    MOVE_DESTINATION_UNKNOWN = "move_destination_unknown"  # 0xA801: our AE is not configured
    SUB_OPS_FAILED = "sub_ops_failed"  # 0xB000: C-MOVE/C-GET finished, some sub-ops failed
    UNABLE_TO_PROCESS = "unable_to_process"  # 0xC0xx
    ABORTED = "aborted"  # transport: the association was aborted (A-ABORT, A-P-ABORT)
    TIMEOUT = "timeout"  # transport: ACSE, DIMSE or network timeout
    NO_ASSOCIATION = "no_association"  # transport: connection or association refused

    @property
    def is_ok(self) -> bool:
        """True when the operation did what was asked (success or a mere warning)."""
        return self in _OK

    @property
    def is_transport(self) -> bool:
        """True for failures of the connection rather than answers from the peer."""
        return self in _TRANSPORT


_OK = frozenset({StatusCategory.SUCCESS, StatusCategory.WARNING})
_TRANSPORT = frozenset(
    {StatusCategory.ABORTED, StatusCategory.TIMEOUT, StatusCategory.NO_ASSOCIATION}
)

# (first, last, category), most specific first; PS3.7 Annex C and the service classes of PS3.4.
STATUS_RANGES: tuple[tuple[int, int, StatusCategory], ...] = (
    (0x0000, 0x0000, StatusCategory.SUCCESS),
    (0xFF00, 0xFF01, StatusCategory.PENDING),
    (0xFE00, 0xFE00, StatusCategory.CANCEL),
    (0xA700, 0xA7FF, StatusCategory.OUT_OF_RESOURCES),
    (0xA801, 0xA801, StatusCategory.MOVE_DESTINATION_UNKNOWN),
    (0xB000, 0xB000, StatusCategory.SUB_OPS_FAILED),
    (0xC000, 0xC0FF, StatusCategory.UNABLE_TO_PROCESS),
    (0x0001, 0x0001, StatusCategory.WARNING),  # requested optional attributes not supported
    (0x0107, 0x0107, StatusCategory.WARNING),  # attribute list error
    (0x0116, 0x0116, StatusCategory.WARNING),  # attribute value out of range
    (0xB001, 0xBFFF, StatusCategory.WARNING),  # coercion, elements discarded, ...
    (0xA000, 0xAFFF, StatusCategory.FAILURE),  # refused, identifier does not match, ...
    (0xC100, 0xCFFF, StatusCategory.FAILURE),  # cannot understand
    (0x0100, 0x02FF, StatusCategory.FAILURE),  # general failures (0x0110, 0x0122, 0x0211, ...)
)


def categorize(status: int) -> StatusCategory:
    """The category of a DIMSE status code; codes no table row names count as FAILURE."""
    for first, last, category in STATUS_RANGES:
        if first <= status <= last:
            return category
    return StatusCategory.FAILURE


# The statuses a migration meets most, in words: what the peer said and what it likely means.
STATUS_NAMES: dict[int, str] = {
    0x0000: "success",
    0x0001: "warning: optional keys not supported",
    0x0107: "warning: attribute list error",
    0x0116: "warning: attribute value out of range",
    0x0110: "processing failure",
    0x0122: "SOP class not supported",
    0x0124: "not authorized (refused)",
    0x0211: "unrecognized operation",
    0xA700: "out of resources",
    0xA701: "out of resources: cannot calculate the number of matches",
    0xA702: "out of resources: cannot perform sub-operations",
    0xA801: "move destination unknown: the source does not know the destination's AE title",
    0xA900: "identifier does not match the SOP class",
    0xB000: "sub-operations completed with one or more failures",
    0xB007: "warning: data set does not match the SOP class",
    0xC000: "unable to process",
    0xFE00: "cancelled (a PACS answering only part of its matches says so with this)",
    0xFF00: "pending",
    0xFF01: "pending: optional keys not supported",
}


def describe_status(status: int | None) -> str:
    """A status code with its meaning, e.g. "0xA801 (move destination unknown: ...)"."""
    if status is None:
        return "no status (the association ended first)"
    name = STATUS_NAMES.get(status)
    if name is None:
        name = {StatusCategory.OUT_OF_RESOURCES: "out of resources",
                StatusCategory.UNABLE_TO_PROCESS: "unable to process",
                StatusCategory.WARNING: "warning"}.get(categorize(status), "failure")
    return f"0x{status:04X} ({name})"
