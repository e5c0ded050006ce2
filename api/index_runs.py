"""Index runs started over HTTP: one at a time, in a background thread, through the server's own open
engine (its loaded model and its store), so searches go on while the run writes and see each batch as
it commits. Only folders listed in `api.index_roots` can be indexed: a request never names a path."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from mmsearch import Engine, Settings
from mmsearch.errors import BusyError, ConfigError

log = logging.getLogger("api")

State = Literal["running", "cancelling", "done", "cancelled", "failed"]


class RunCancelled(Exception):
    """Raised from the progress callback to stop index_folder between files."""


@dataclass
class IndexRun:
    root: str
    prune: bool
    state: State = "running"
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    done: int = 0
    total: int | None = None
    indexed: int = 0
    skipped: int = 0
    failed: int = 0
    removed: int = 0
    errors: list[list[str]] = field(default_factory=list)  # [uri, reason], the first few
    message: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


MAX_ERRORS_SHOWN = 20


class IndexRunner:
    def __init__(self, engine: Engine, settings: Settings):
        self.engine, self.settings = engine, settings
        self.roots = [p.resolve() for p in settings.api.index_roots]
        self.run: IndexRun | None = None
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()

    def root_for(self, asked: str | None) -> Path:
        if not self.roots:
            raise ConfigError(
                "no folders may be indexed over HTTP: list them in MMSEARCH_API__INDEX_ROOTS "
                "(or `mmsearch serve --index-root PATH`)"
            )
        if asked is None:
            return self.roots[0]
        for root in self.roots:
            if asked in (str(root), root.name):
                return root
        choices = ", ".join(str(r) for r in self.roots)
        raise ConfigError(f"not a configured index root: {asked!r} (choose one of: {choices})")

    def start(self, asked_root: str | None = None, prune: bool = False) -> IndexRun:
        root = self.root_for(asked_root)
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise BusyError(f"an index run of {self.run.root} is going; wait for it or cancel it")
            self._cancel.clear()
            self.run = IndexRun(str(root), prune)
            self._thread = threading.Thread(target=self._work, args=(root, self.run), name="index-run")
            self._thread.start()
            return self.run

    def cancel(self) -> IndexRun | None:
        with self._lock:
            if self.run is not None and self.run.state == "running":
                self.run.state = "cancelling"
                self._cancel.set()
            return self.run

    def close(self, timeout: float | None = None) -> None:
        """Cancels a running run and waits for it to stop (at the next file)."""
        self.cancel()
        if self._thread is not None:
            self._thread.join(timeout)

    def _progress(self, run: IndexRun, done: int, total: int) -> None:
        run.done, run.total = done, total
        if self._cancel.is_set():
            raise RunCancelled

    def _work(self, root: Path, run: IndexRun) -> None:
        try:
            report = self.engine.index(
                root, run.prune, on_progress=lambda done, total: self._progress(run, done, total)
            )
        except RunCancelled:
            run.state, run.message = "cancelled", "cancelled; the files done so far are indexed"
        except Exception as exc:
            log.exception("index run of %s failed", root)
            run.state, run.message = "failed", f"{type(exc).__name__}: {exc}"
        else:
            run.state = "done"
            run.indexed, run.skipped, run.failed, run.removed = (
                report.indexed,
                report.skipped,
                report.failed,
                report.removed,
            )
            run.errors = [[uri, reason] for uri, reason in report.errors[:MAX_ERRORS_SHOWN]]
            if run.total is None:  # nothing new or changed: progress was never reported
                run.total = 0
        finally:
            run.finished_at = time.time()
