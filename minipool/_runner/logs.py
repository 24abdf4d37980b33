"""Where the runner's events go: worker and runner events as JSON or console lines."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

from .._progress import Progress
from .targets import UsageError

RUNNER = "minipool.runner"  # the logger name of the runner's own events


class LogSink:
    """Worker and runner events, to ``--log-file`` (or stderr) as JSON or console lines."""

    def __init__(self, stream: TextIO, fmt: str, runner_events: bool) -> None:
        self._stream = stream
        # On stderr, only the jobs' own events: the runner's would crowd the
        # one line a failed or interrupted run prints there.
        self._runner_events = runner_events
        self._render = _render_json if fmt == "json" else _render_console
        self._lock = threading.Lock()  # events come from the pool's thread and this one
        self._progress: Progress | None = None  # a bar the lines must go above

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: str | None, fmt: str) -> Iterator[LogSink]:
        if path is None:
            yield cls(sys.stderr, fmt, runner_events=False)
            return
        try:
            stream = open(path, "a", encoding="utf-8")  # noqa: SIM115 -- closed below
        except OSError as error:
            raise UsageError(f"cannot write --log-file {path}: {error.strerror}") from None
        with stream:
            yield cls(stream, fmt, runner_events=True)

    def show_progress(self, progress: Progress) -> None:
        """Events written to the terminal the bar is on go above it, not through it."""
        if self._stream is sys.stderr:
            self._progress = progress

    def __call__(self, event: dict[str, Any]) -> None:
        line = self._render(event)
        if self._progress is not None:
            self._progress.write(line + "\n")
            return
        with self._lock:
            self._stream.write(line + "\n")

    def flush(self) -> None:
        """Called with each batch of output lines: a system call per batch, not per event."""
        with self._lock:
            self._stream.flush()

    def runner_event(self, event: str, **fields: Any) -> None:
        if self._runner_events:
            stamp = time.time()
            self({"event": event, "level": "info", "timestamp": stamp, "logger": RUNNER, **fields})
            self.flush()


def _render_json(event: dict[str, Any]) -> str:
    return json.dumps(event, default=repr)


def _render_console(event: dict[str, Any]) -> str:
    fields = dict(event)
    stamp = time.strftime("%H:%M:%S", time.localtime(fields.pop("timestamp", time.time())))
    level = str(fields.pop("level", "info"))
    text = str(fields.pop("event", ""))
    exception = fields.pop("exception", None)
    rest = " ".join(f"{key}={value!r}" for key, value in fields.items())
    line = f"{stamp} [{level:<7}] {text} {rest}".rstrip()
    return f"{line}\n{exception}" if exception else line
