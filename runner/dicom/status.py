"""DIMSE status codes sorted into categories, as a table; transport failures as categories too."""

from __future__ import annotations

from enum import StrEnum

# The status codes the runner answers or names itself (PS3.7 Annex C); every other module
# takes them from here.
SUCCESS = 0x0000
PROCESSING_FAILURE = 0x0110
NO_SUCH_SOP_INSTANCE = 0x0112
SOP_CLASS_NOT_SUPPORTED = 0x0122
NOT_AUTHORIZED = 0x0124
UNRECOGNISED_OPERATION = 0x0211
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
COERCION_WARNING = 0xB000  # for C-STORE a warning; categorize() reads it as C-MOVE's


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


# (first, last, name, likely cause), most specific first: how a status reads to a person.
STATUS_MEANINGS: tuple[tuple[int, int, str, str], ...] = (
    (0x0000, 0x0000, "Success", "done"),
    (0xFF00, 0xFF01, "Pending", "more answers follow"),
    (0xFE00, 0xFE00, "Cancel", "the operation was cancelled"),
    (0xA700, 0xA7FF, "Out of resources",
     "the peer is busy or short of memory/disk: try later or lower the throttle"),
    (0xA801, 0xA801, "Move destination unknown",
     "the source does not know the move destination AE: register the runner's listener "
     "(AE, host, port) on the source"),
    (0xA900, 0xA9FF, "Identifier does not match SOP class",
     "the peer does not accept this query model or these keys"),
    (0xB000, 0xB000, "Sub-operations failed",
     "the source could not store some instances at the move destination"),
    (0xC000, 0xC0FF, "Unable to process",
     "the peer failed the request; for a C-MOVE often: it cannot open an association to "
     "the move destination (host, port or AE wrong at the source)"),
    (0x0122, 0x0122, "SOP class not supported", "the peer does not accept this SOP class"),
    (0x0124, 0x0124, "Refused: not authorized", "the peer does not allow this calling AE"),
    (0x0211, 0x0211, "Unrecognized operation", "the peer does not offer this service"),
    (0x0001, 0x0001, "Warning", "requested optional attributes not supported"),
    (0xB001, 0xBFFF, "Warning", "coercion of data elements or elements discarded"),
    (0xA000, 0xAFFF, "Refused", "the peer refused the request"),
    (0xC100, 0xCFFF, "Cannot understand", "the peer could not read the request"),
    (0x0100, 0x02FF, "Failure", "the peer answered a general failure"),
)


def describe(status: int) -> str:
    """A status as a person reads it: `0xA801 Move destination unknown (likely cause)`."""
    for first, last, name, cause in STATUS_MEANINGS:
        if first <= status <= last:
            return f"0x{status:04X} {name} ({cause})"
    return f"0x{status:04X} Failure (a status no table names)"


# A-ASSOCIATE-RJ (PS3.8 9.3.4): (source, reason) -> what it means.
REJECT_REASONS: dict[tuple[int, int], str] = {
    (1, 1): "no reason given (often: the calling AE title is not registered at the peer)",
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognized",
    (1, 7): "called AE title not recognized",
    (2, 1): "no reason given",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded (too many associations)",
}


def reject_reason(source: int, reason: int) -> str:
    """Why a peer rejected an association, in words."""
    return REJECT_REASONS.get((source, reason), f"source {source}, reason {reason}")


def status_text(status: int) -> str:
    """A status for a message: bare for success (`0x0000`), else named with its likely cause."""
    return f"0x{status:04X}" if status == 0 else describe(status)
