"""Numbers, sizes, durations and times written for people (thousands separators, units)."""

from __future__ import annotations

from datetime import datetime

DASH = "—"
SIZE_UNITS: tuple[tuple[str, float], ...] = (
    ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("bytes", 1.0))


def count(value: int | None) -> str:
    """1234567 -> '1,234,567'; None -> a dash."""
    return DASH if value is None else f"{value:,}"


def plural(value: int, one: str, many: str) -> str:
    """'1 study', '1,234 studies'."""
    return f"{value:,} {one if value == 1 else many}"


def decimal(value: float | None, places: int = 2) -> str:
    """1234.5 -> '1,234.50'; None -> a dash."""
    return DASH if value is None else f"{value:,.{places}f}"


def size_unit(largest: float) -> tuple[str, float]:
    """The largest decimal unit (TB, GB, MB, kB, bytes) in which `largest` is at least 1."""
    for name, factor in SIZE_UNITS:
        if largest >= factor:
            return name, factor
    return SIZE_UNITS[-1]


def size(nbytes: float | None) -> str:
    """Bytes in the unit that suits them: 1.5e9 -> '1.50 GB'."""
    if nbytes is None:
        return DASH
    name, factor = size_unit(nbytes)
    return f"{nbytes:,.0f} bytes" if factor == 1.0 else f"{nbytes / factor:,.2f} {name}"


def percent(part: int, whole: int) -> str:
    """Share of `whole`, one decimal: '97.5 %'; a dash when `whole` is 0."""
    return DASH if whole == 0 else f"{100.0 * part / whole:.1f} %"


def duration(seconds: float | None) -> str:
    """Seconds as '2 d 4 h', '3 h 05 min', '12 min 30 s' or '45 s'."""
    if seconds is None:
        return DASH
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days:,} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{seconds:.1f} s" if seconds < 10 else f"{secs} s"


def when(moment: datetime | None) -> str:
    """A moment to the minute in its own zone: '2024-03-01 14:05'."""
    return DASH if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def day(moment: datetime) -> str:
    """A day: '04 Mar 2024'."""
    return moment.strftime("%d %b %Y")
