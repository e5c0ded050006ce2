"""What every benchmark shares: one stopwatch, rates and ratios rounded alike, latency percentiles in
milliseconds, and one way to show a result: its fields as a table with a one-line summary, or JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table


class Stopwatch:
    """Wall-clock seconds since it was started (monotonic: `time.perf_counter`)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.started


def rate(count: float, seconds: float, digits: int = 2) -> float:
    """Things per second, rounded to `digits`."""
    return round(count / seconds, digits)


def ratio(numerator: float, denominator: float, digits: int = 3) -> float:
    """numerator / denominator, rounded to `digits`: the figure a benchmark exists to report."""
    return round(numerator / denominator, digits)


def percentiles_ms(seconds: Sequence[float], points: Sequence[float], digits: int) -> list[float]:
    """The given percentiles of durations in seconds, as milliseconds rounded to `digits`."""
    import numpy as np  # here, not at the top: the command line imports this module for --help

    ms = np.asarray(seconds) * 1000
    return [round(float(v), digits) for v in np.percentile(ms, points)]


def show(out: Console, result: object, as_json: bool, summary: str) -> None:
    """A benchmark's fields (a dataclass) as JSON, or as a table followed by its one-line summary."""
    if as_json:
        out.print_json(data=asdict(result))
        return
    table = Table(box=None, show_header=False)
    for key, value in asdict(result).items():
        table.add_row(key, str(value))
    out.print(table)
    out.print(summary)


def write_json(path: Path, data: dict) -> None:
    """A benchmark's results as an indented JSON file, for docs/benchmarks.md and later comparison."""
    path.write_text(json.dumps(data, indent=2))
