"""Inline SVG charts for the sign-off report: received data per week, stacked by tier."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from runner.report.fmt import size_unit
from runner.report.model import Throughput

TIER_ORDER = ("local", "nearline", "offline")
TIER_COLOURS = {"local": "#1f4e79", "nearline": "#e0892b", "offline": "#8a8a8a"}
OTHER_COLOUR = "#6a9f58"
WIDTH, HEIGHT = 720, 320
LEFT, RIGHT, TOP, BOTTOM = 70, 16, 34, 46
MAX_LABELS = 10


@dataclass(frozen=True, slots=True)
class Bar:
    """One week: its start and the bytes received from each tier."""

    start: datetime
    by_tier: dict[str, int]

    @property
    def total(self) -> int:
        """Bytes received that week from every tier."""
        return sum(self.by_tier.values())


def bars_by_week(points: Sequence[Throughput]) -> list[Bar]:
    """Throughput rows (one per week and tier) as one bar per week, in time order."""
    weeks: dict[datetime, dict[str, int]] = {}
    for point in sorted(points, key=lambda p: p.bucket):
        tiers = weeks.setdefault(point.bucket, {})
        tiers[point.tier] = tiers.get(point.tier, 0) + point.bytes
    return [Bar(start, tiers) for start, tiers in weeks.items()]


def tiers_of(bars: Sequence[Bar]) -> list[str]:
    """The tiers present, in storage order (local, nearline, offline, then any other)."""
    present = {tier for bar in bars for tier, value in bar.by_tier.items() if value}
    known = [tier for tier in TIER_ORDER if tier in present]
    return known + sorted(present - set(TIER_ORDER))


def nice_step(top: float, ticks: int = 5) -> float:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about `ticks` ticks."""
    raw = top / ticks
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for multiple in (1.0, 2.0, 2.5, 5.0, 10.0):
        if multiple * magnitude >= raw:
            return multiple * magnitude
    return 10 * magnitude


def weekly_chart(points: Sequence[Throughput]) -> str:
    """A stacked bar chart of data received per week by tier, as an inline <svg> element."""
    bars = bars_by_week(points)
    largest = max((bar.total for bar in bars), default=0)
    if largest == 0:
        return _frame("No data received in this period", _empty_note())
    unit, factor = size_unit(largest)
    step = nice_step(largest / factor)
    top = step * math.ceil(largest / factor / step)
    tiers = tiers_of(bars)
    body = (_grid(top, step, unit) + _bars(bars, tiers, top, factor, unit)
            + _x_labels(bars) + _legend(tiers))
    return _frame(f"Data received per week by storage tier, in {unit}", body)


def _frame(label: str, body: str) -> str:
    return (f'<svg class="chart" role="img" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" aria-label="{escape(label)}" '
            f'font-family="DejaVu Sans, Arial, sans-serif" font-size="11">'
            f"<title>{escape(label)}</title>{body}</svg>")


def _empty_note() -> str:
    return (f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
            f'height="{HEIGHT - TOP - BOTTOM}" fill="#f4f4f4" stroke="#bbb"/>'
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#555">'
            "No data received in this period</text>")


def _plot_y(value: float, top: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top)


def _grid(top: float, step: float, unit: str) -> str:
    parts = []
    for index in range(round(top / step) + 1):
        value = index * step
        y = _plot_y(value, top)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
                     f'stroke="{"#333" if index == 0 else "#ddd"}" stroke-width="1"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{_tick(value, step)}</text>")
    middle = TOP + (HEIGHT - TOP - BOTTOM) / 2
    parts.append(f'<text x="14" y="{middle:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {middle:.1f})">{escape(unit)} per week</text>')
    return "".join(parts)


def _tick(value: float, step: float) -> str:
    digits = f"{step:.6f}".rstrip("0").partition(".")[2]
    return f"{value:,.{len(digits)}f}"


def _slot(index: int, count: int) -> tuple[float, float]:
    """Left edge and width of bar `index` of `count`."""
    slot = (WIDTH - LEFT - RIGHT) / count
    width = max(1.0, slot * 0.75)
    return LEFT + index * slot + (slot - width) / 2, width


def _bars(bars: Sequence[Bar], tiers: Sequence[str], top: float, factor: float,
          unit: str) -> str:
    parts = []
    for index, bar in enumerate(bars):
        x, width = _slot(index, len(bars))
        base = 0.0
        for tier in tiers:
            value = bar.by_tier.get(tier, 0) / factor
            if value <= 0:
                continue
            y0, y1 = _plot_y(base, top), _plot_y(base + value, top)
            colour = TIER_COLOURS.get(tier, OTHER_COLOUR)
            label = f"week of {bar.start:%d %b %Y}, {tier}: {value:,.2f} {unit}"
            parts.append(f'<rect class="bar" x="{x:.1f}" y="{y1:.1f}" width="{width:.1f}" '
                         f'height="{max(y0 - y1, 0.5):.1f}" fill="{colour}">'
                         f"<title>{escape(label)}</title></rect>")
            base += value
    return "".join(parts)


def _x_labels(bars: Sequence[Bar]) -> str:
    every = math.ceil(len(bars) / MAX_LABELS)
    parts = []
    for index in range(0, len(bars), every):
        x, width = _slot(index, len(bars))
        centre = x + width / 2
        parts.append(f'<line x1="{centre:.1f}" y1="{HEIGHT - BOTTOM}" x2="{centre:.1f}" '
                     f'y2="{HEIGHT - BOTTOM + 4}" stroke="#333"/>'
                     f'<text x="{centre:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                     f'text-anchor="middle">{bars[index].start:%d %b %y}</text>')
    parts.append(f'<text x="{LEFT + (WIDTH - LEFT - RIGHT) / 2}" y="{HEIGHT - 8}" '
                 'text-anchor="middle">week starting (Monday)</text>')
    return "".join(parts)


def _legend(tiers: Sequence[str]) -> str:
    parts = []
    x = float(LEFT)
    for tier in tiers:
        colour = TIER_COLOURS.get(tier, OTHER_COLOUR)
        parts.append(f'<rect x="{x:.1f}" y="10" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{x + 17:.1f}" y="20">{escape(tier)}</text>')
        x += 30 + 7 * len(tier)
    return "".join(parts)
