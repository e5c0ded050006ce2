"""`mmsearch bench oneshot`: whole-process wall time of `mmsearch search "text"`, the light way
(search/query/quick.py) against the full way (the engine with torch), in one run on the same index.

Each run is a fresh process, as a user's shell starts it; the full way is forced with a setting at its
default value (any search setting sends a search the full way), so both rank with the same settings.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import sys
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL, Popen

from mmsearch.api.bench.measure import Stopwatch, ratio
from mmsearch.defaults import CATALOG
from mmsearch.hits import INDEXED

FORCE_FULL = {"MMSEARCH_SEARCH__CANDIDATES": "100"}  # the default: changes nothing but the way


@dataclass
class OneShotBench:
    index_dir: str
    items: int  # indexed items
    segments: int  # their vectors, both spaces
    query: str
    runs: int
    light_s: float  # median whole-process wall time
    light_peak_mib: float  # the largest peak resident set over the runs
    full_s: float
    full_peak_mib: float
    light_took_the_light_way: bool  # False: the index needs the engine (see search/query/quick.py)

    @property
    def speedup(self) -> float:
        return ratio(self.full_s, self.light_s, 2)


def bench_oneshot(index_dir: Path, query: str, runs: int) -> OneShotBench:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("MMSEARCH_")}
    args = ["search", query, "-k", "10", "--index-dir", str(index_dir)]
    _run(args, clean)  # warm the page cache: every run reads the same files
    light = [_run(args, clean) for _ in range(runs)]
    full = [_run(args, {**clean, **FORCE_FULL}) for _ in range(runs)]
    return OneShotBench(
        str(index_dir),
        *_size(index_dir),
        query,
        runs,
        round(statistics.median(t for t, _, _ in light), 3),
        max(m for _, m, _ in light),
        round(statistics.median(t for t, _, _ in full), 3),
        max(m for _, m, _ in full),
        all(not heavy for _, _, heavy in light),
    )


def _size(index_dir: Path) -> tuple[int, int]:
    with closing(sqlite3.connect(f"{(index_dir / CATALOG).resolve().as_uri()}?mode=ro", uri=True)) as db:
        items = db.execute("SELECT count(*) FROM items WHERE status = ?", (INDEXED,)).fetchone()[0]
        return items, db.execute("SELECT count(*) FROM segments").fetchone()[0]


def _run(args: list[str], env: dict[str, str]) -> tuple[float, float, bool]:
    """(wall seconds, peak RSS MiB, whether torch was imported) of one `mmsearch ARGS` process."""
    code = (
        "import sys\nfrom mmsearch.api.launch import main\nsys.argv = ['mmsearch', *sys.argv[1:]]\nmain()\n"
        "sys.stderr.write('torch loaded\\n' if 'torch' in sys.modules else '')\n"
    )
    with tempfile.TemporaryFile() as errors:
        clock = Stopwatch()
        proc = Popen([sys.executable, "-c", code, *args], env=env, stdout=DEVNULL, stderr=errors)
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own peak memory, unlike communicate()
        elapsed = clock.seconds()
        proc.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        stderr = errors.read()
    if proc.returncode:
        raise RuntimeError(f"mmsearch {' '.join(args)} failed: {stderr.decode()[-500:]}")
    return elapsed, round(usage.ru_maxrss / 1024, 1), b"torch loaded" in stderr
