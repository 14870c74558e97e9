"""The console's pure parts: plot data for uPlot, time and number filters, GPU index mapping."""

from __future__ import annotations

import datetime as dt

import pytest

from api.console.history import charts
from api.console.render import ago, num
from core.history import Point
from core.process_stats import physical_gpu


def point(t: float, rps: float, p99: float | None = None) -> Point:
    return Point(t=t, rps=rps, eps=0.0, p50_ms=None, p99_ms=p99, backlog=1, workers=2, desired=3)


def test_variants_sampled_at_different_times_line_up_with_gaps() -> None:
    result = {
        c["id"]: c
        for c in charts({"a": [point(100, 3.0), point(105, 4.0)], "b": [point(105, 0.5)]})
    }
    assert result["rps"]["series"] == ["a", "b"]
    assert result["rps"]["data"] == [[100, 105], [3.0, 4.0], [None, 0.5]]
    assert result["latency"]["series"] == ["a p50", "a p99", "b p50", "b p99"]
    assert result["queue"]["data"][1:4] == [[1, 1], [2, 2], [3, 3]]


def test_no_history_gives_empty_charts() -> None:
    assert all(c["data"] == [[]] for c in charts({}))


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0 s ago"), (59, "59 s ago"), (61, "1 min ago"), (7300, "2 h ago")]
)
def test_ago(seconds: int, text: str) -> None:
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    assert ago(now - dt.timedelta(seconds=seconds), now) == text


def test_num() -> None:
    assert (num(None), num(1234), num(2.0), num(1234.567)) == ("-", "1,234", "2", "1,234.57")


@pytest.mark.parametrize(
    ("device", "visible", "index"),
    [("cpu", None, None), ("cuda:1", None, 1), ("cuda", "4,6", 4), ("cuda:1", "4,6", 6)],
)
def test_physical_gpu(device: str, visible: str | None, index: int | None) -> None:
    assert physical_gpu(device, visible) == index


def test_package_data_ships_every_template_and_asset() -> None:
    """`pip install .` must carry the console's files: pyproject's patterns cover them all."""
    import tomllib
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["api.console"]
    console = repo / "api" / "console"
    shipped = {path for pattern in patterns for path in console.glob(pattern) if path.is_file()}
    files = {
        path
        for folder in ("templates", "static")
        for path in (console / folder).rglob("*")
        if path.is_file()
    }
    assert files and files == shipped
    assert {p.name for p in files} >= {"uplot.LICENSE", "htmx.LICENSE"}  # licences travel too
