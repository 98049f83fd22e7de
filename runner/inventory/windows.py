"""Date windows: closed ranges of study dates, halved while a query over them answers full."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """A closed range of study dates, first and last day included."""

    first: date
    last: date

    @property
    def days(self) -> int:
        """How many days the window covers."""
        return (self.last - self.first).days + 1

    def halves(self) -> tuple[Window, Window]:
        """The window split into two (the first half is the shorter one for odd lengths)."""
        if self.days < 2:
            raise ValueError(f"a single day cannot be split: {self}")
        middle = self.first + timedelta(days=self.days // 2)
        return Window(self.first, middle - timedelta(days=1)), Window(middle, self.last)

    def dicom_range(self) -> str:
        """The window as a DICOM DA range ("YYYYMMDD-YYYYMMDD", or one date)."""
        first, last = _da(self.first), _da(self.last)
        return first if first == last else f"{first}-{last}"

    def __str__(self) -> str:
        if self.first == self.last:
            return self.first.isoformat()
        return f"{self.first.isoformat()}..{self.last.isoformat()}"


def _da(day: date) -> str:
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def date_windows(date_from: date, date_to: date, window_days: int) -> list[Window]:
    """Consecutive windows of `window_days` covering [date_from, date_to] (last one shorter)."""
    if window_days < 1:
        raise ValueError(f"window_days must be at least 1: {window_days}")
    if date_to < date_from:
        raise ValueError(f"date_to {date_to} is before date_from {date_from}")
    step = timedelta(days=window_days)
    windows: list[Window] = []
    first = date_from
    while first <= date_to:
        last = date_to if (date_to - first) < step else first + step - timedelta(days=1)
        windows.append(Window(first, last))
        if last == date.max:
            break
        first = last + timedelta(days=1)
    return windows
