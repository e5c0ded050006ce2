"""Media decoding in child processes: a decoder that segfaults or hangs costs one file, never the run.

PyAV/FFmpeg can take the whole interpreter down on a hostile file, so each MediaWorker runs
`mmsearch.indexer.worker` in its own process and talks to it over a pipe. The child sends a heartbeat while it
works; silence for `timeout_s` (a hang) or a dead child (a crash) becomes a MediaError for that file, and
the next file gets a fresh child.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection

from mmsearch.errors import MediaError, ModelUnavailableError
from mmsearch.indexer.worker import MediaExtract, MediaRequest


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


STARTUP_S = 60.0  # how long a new media worker may take to import before it says it is ready


class MediaWorker:
    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen | None = None
        self._send: Connection | None = None
        self._recv: Connection | None = None

    def _start(self) -> None:
        child_read, parent_write = os.pipe()
        parent_read, child_write = os.pipe()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "mmsearch.indexer.worker", str(child_read), str(child_write)],
            pass_fds=(child_read, child_write),
            stdin=subprocess.DEVNULL,
        )
        os.close(child_read)
        os.close(child_write)
        self._send = Connection(parent_write, readable=False)
        self._recv = Connection(parent_read, writable=False)
        # A new child's imports (PyAV, Whisper's runtime) take seconds on a loaded machine: that is not
        # a decoder's silence, so the timeout starts when it says it is ready.
        ready = self._recv.poll(max(STARTUP_S, self.timeout_s))
        try:
            said = self._recv.recv() if ready else None
        except (EOFError, OSError):
            said = None
        if said != ("ready", None):
            code = self._proc.poll()
            self.close()
            why = "did not start in time" if code is None else f"exited at start ({_describe_exit(code)})"
            raise MediaError(f"the media worker {why}")

    def extract(self, req: MediaRequest) -> MediaExtract:
        if self._proc is None:
            self._start()
        try:
            self._send.send(req)
        except OSError:  # the child died between files
            self.close()
            self._start()
            self._send.send(req)
        while True:
            if not self._recv.poll(self.timeout_s):
                self.close()
                raise MediaError(f"decoding timed out: no progress for {self.timeout_s:g} s")
            try:
                kind, payload = self._recv.recv()
            except (EOFError, OSError):
                code = self._proc.wait()
                self.close()
                raise MediaError(f"the decoder crashed ({_describe_exit(code)})") from None
            if kind == "ok":
                return payload
            if kind == "error":
                raise MediaError(payload)
            if kind == "fatal":
                raise ModelUnavailableError(payload)

    def close(self) -> None:
        for conn in (self._send, self._recv):
            if conn is not None:
                conn.close()
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
        self._proc = self._send = self._recv = None


class MediaWorkers:
    """A fixed set of media workers shared by the decode threads."""

    def __init__(self, count: int, timeout_s: float):
        self._all = [MediaWorker(timeout_s) for _ in range(count)]
        self._free: queue.Queue[MediaWorker] = queue.Queue()
        for w in self._all:
            self._free.put(w)

    @contextmanager
    def one(self) -> Iterator[MediaWorker]:
        worker = self._free.get()
        try:
            yield worker
        finally:
            self._free.put(worker)

    def close(self) -> None:
        for w in self._all:
            w.close()
