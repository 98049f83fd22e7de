"""What every ledger fact shares: the base of their declarations (`LedgerFact`, which keeps
them in the order declared), the enumerations and words facts use, and the checks each runs
on creation (timestamps timezone-aware, normalised to UTC)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from runner.ledger.tables import Conn


class StudyStatus(StrEnum):
    """Where the engine stands with a study (the reconciliation view derives its own status)."""

    PENDING = "pending"
    ACTIVE = "active"
    DONE = "done"
    FAILED = "failed"


class RetrievePurpose(StrEnum):
    """Why a C-MOVE was issued: to migrate, to re-date (instances discarded), to repair gaps."""

    MIGRATE = "migrate"
    REDATE = "redate"
    REPAIR = "repair"


class VerificationMethod(StrEnum):
    """How the destination was asked whether a study arrived."""

    IMAGE_FIND = "image_find"
    COUNT = "count"
    COMMITMENT = "commitment"


class EventKind(StrEnum):
    """The well-known kinds of `EventRecorded`; other kinds are accepted as plain strings."""

    DEVICE_DOWN = "device_down"
    DEVICE_UP = "device_up"
    STALL = "stall"
    THROTTLE_CHANGE = "throttle_change"
    DEAD_TIME_START = "dead_time_start"
    DEAD_TIME_END = "dead_time_end"
    REDATE = "redate"
    STORE_REFUSED = "store_refused"
    SPOOL_FILE_DAMAGED = "spool_file_damaged"
    LISTENER_REFUSED = "listener_refused"  # an association or presentation context
    CONFLICT = "conflict"  # the destination holds a study's UIDs otherwise than the source
    SAMPLE_CHECK = "sample_check"  # an instance read back from the destination and compared


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A fresh identifier for runs, retrieves and events (32 hex digits)."""
    return uuid.uuid4().hex


def as_utc(value: datetime) -> datetime:
    """`value` in UTC; a naive datetime is refused because its zone cannot be known."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} given; the ledger needs aware UTC")
    return value.astimezone(UTC)


def need_text(name: str, value: str) -> None:
    if not value:
        raise ValueError(f"{name} must not be empty")


def need_count(name: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")


def fix_time(fact: object, name: str = "at") -> None:
    object.__setattr__(fact, name, as_utc(getattr(fact, name)))


class LedgerFact:
    """A kind of fact: its fields, checked on creation (a frozen dataclass), and `write`, how
    a batch of such facts is stored. Every subclass is a declared fact, in the order of
    declaration (see the module docstring)."""

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # @dataclass(slots=True) makes a second class of the same name (its __qualname__ is
        # set only afterwards): it takes the place of the first, which keeps the order.
        _DECLARED[f"{cls.__module__}.{cls.__name__}"] = cls

    @classmethod
    def write(cls, conn: Conn, facts: Sequence[Self], upsert: bool) -> None:
        """Store `facts` (all of this kind, in recorded order) on `conn`, inside the caller's
        transaction: the fast path (`upsert` False) or the one with conflict clauses."""
        raise NotImplementedError(f"{cls.__name__} declares no write")


_DECLARED: dict[str, type[LedgerFact]] = {}  # module.name: the fact, in declaration order


def declared() -> tuple[type[LedgerFact], ...]:
    """Every declared fact, in the order of declaration: the order each batch is written in."""
    return tuple(_DECLARED.values())
