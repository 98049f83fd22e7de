"""The weekly throughput chart: inline SVG with axes, labels and a legend, for any data."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from runner.report.chart import MAX_LABELS, nice_step, weekly_chart
from runner.report.model import Throughput

MONDAY = datetime(2024, 1, 1, tzinfo=UTC)


def week(n: int, tier: str, nbytes: int) -> Throughput:
    return Throughput(bucket=MONDAY + timedelta(weeks=n), tier=tier, bytes=nbytes, instances=1)


def bar_heights(svg: str) -> list[float]:
    return [float(h) for h in re.findall(r'<rect class="bar"[^>]*height="([0-9.]+)"', svg)]


def tick_labels(svg: str) -> list[str]:
    return re.findall(r'<text x="[0-9.]+" y="[0-9.]+" text-anchor="end">([^<]+)</text>', svg)


def test_no_data_gives_a_chart_that_says_so_without_bars() -> None:
    for points in ([], [week(0, "local", 0), week(1, "nearline", 0)]):
        svg = weekly_chart(points)
        assert svg.startswith("<svg") and svg.endswith("</svg>")
        assert "No data received in this period" in svg
        assert bar_heights(svg) == []


def test_one_week_stacks_its_tiers_in_one_bar_in_a_unit_that_fits() -> None:
    svg = weekly_chart([week(0, "local", 2 * 10**12), week(0, "nearline", 5 * 10**11)])
    assert "TB per week" in svg
    assert "week of 01 Jan 2024, local: 2.00 TB" in svg
    assert "week of 01 Jan 2024, nearline: 0.50 TB" in svg
    local, nearline = bar_heights(svg)
    assert local == pytest.approx(4 * nearline, rel=0.01)
    assert re.findall(r">(local|nearline|offline)</text>", svg) == ["local", "nearline"]
    assert ">01 Jan 24</text>" in svg
    assert tick_labels(svg)[-1] == "2.5"


def test_many_weeks_keep_the_axis_labels_few_and_the_top_tick_above_the_largest_week() -> None:
    points = [week(n, tier, (n % 7 + 1) * 10**9 * (2 if tier == "local" else 1))
              for n in range(104) for tier in ("local", "nearline", "offline")]
    svg = weekly_chart(points)
    assert "GB per week" in svg
    assert len(bar_heights(svg)) == 104 * 3
    labels = re.findall(r'text-anchor="middle">(\d\d \w\w\w \d\d)</text>', svg)
    assert 2 <= len(labels) <= MAX_LABELS
    assert labels[0] == "01 Jan 24"
    assert float(tick_labels(svg)[-1].replace(",", "")) >= 28


def test_tick_steps_are_round_numbers() -> None:
    assert [nice_step(top) for top in (1, 7, 28, 95, 1234, 0.3)] == [
        0.2, 2.0, 10.0, 20.0, 250.0, 0.1]


def test_chart_refers_to_nothing_outside_itself() -> None:
    svg = weekly_chart([week(n, "local", 10**9) for n in range(3)])
    assert not re.search(r"https?://|href=|src=|url\(", svg)
