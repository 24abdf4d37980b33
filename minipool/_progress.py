"""What ``map(progress=True)`` and the runner's ``--progress`` show on stderr.

On a terminal (or in a notebook) a tqdm bar, which counts failures as
``failed=N``; text written through ``Progress.write`` (the runner's log
lines) appears above the bar, never through it. Elsewhere (a file, a pipe, a
CI log) a bar's redrawn frames would pile up on one line, so a whole status
line is printed every ``STATUS_SECONDS`` instead, and one at the end.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

# How often a status line is printed where there is no terminal: a line a
# person can read in a CI log without a flood.
STATUS_SECONDS = 10.0
# How long text for above the bar may wait to be written with other text:
# each write clears and redraws the bar, and a job that logs every record
# would otherwise redraw it for every line (and hide it).
BATCH_SECONDS = 0.1


def progress_bar(total: int | None, unit: str = "job") -> Progress:
    """A tqdm bar on a terminal, status lines elsewhere; tqdm is imported only when asked for."""
    stream = sys.stderr
    if _is_terminal(stream):
        return _Bar(total, unit, stream)
    return _StatusLines(total, unit, stream)


class Progress:
    """How far a map or a run is: ``done`` of ``total`` (None: unknown), ``failed`` of them."""

    def __init__(self, total: int | None, unit: str, stream: TextIO) -> None:
        self.total = total
        self.unit = unit
        self.stream = stream
        self.done = 0
        self.failed = 0

    def update(self, done: int, failed: int = 0) -> None:
        """``done`` more finished, ``failed`` of them with an error."""
        self.done += done
        self.failed += failed

    def write(self, text: str) -> None:
        """Print ``text`` (whole lines) on the stream, above the bar if there is one."""
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        pass


class _Bar(Progress):
    def __init__(self, total: int | None, unit: str, stream: TextIO) -> None:
        super().__init__(total, unit, stream)
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self._bar = tqdm(total=total, unit=unit, dynamic_ncols=True, smoothing=0.1, file=stream)
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._flusher: threading.Timer | None = None
        self._closed = False  # then text is written at once: no timer may outlive the bar

    def update(self, done: int, failed: int = 0) -> None:
        super().update(done, failed)
        if failed:
            self._bar.set_postfix(failed=self.failed, refresh=False)
        self._bar.update(done)

    def write(self, text: str) -> None:
        with self._lock:
            self._pending.append(text)
            closed = self._closed
            if not closed and self._flusher is None:
                self._flusher = threading.Timer(BATCH_SECONDS, self._flush)
                self._flusher.daemon = True
                self._flusher.start()
        if closed:
            self._flush()

    def _flush(self) -> None:
        with self._lock:  # held while writing, so that texts keep their order
            text = "".join(self._pending)
            self._pending.clear()
            self._flusher = None
            if text:
                with self._tqdm.external_write_mode(file=self.stream):
                    self.stream.write(text)
                    self.stream.flush()

    def close(self) -> None:
        with self._lock:
            flusher = self._flusher
            self._closed = True
        if flusher is not None:
            flusher.cancel()
        self._flush()
        self._bar.close()


class _StatusLines(Progress):
    def __init__(self, total: int | None, unit: str, stream: TextIO) -> None:
        super().__init__(total, unit, stream)
        self._started = self._shown = time.monotonic()

    def update(self, done: int, failed: int = 0) -> None:
        super().update(done, failed)
        now = time.monotonic()
        if now - self._shown >= STATUS_SECONDS:
            self._shown = now
            self._print(now)

    def close(self) -> None:
        self._print(time.monotonic())

    def _print(self, now: float) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        rate = self.done / max(now - self._started, 1e-9)
        line = (
            f"minipool: {self.done}{of} {self.unit}s done, {self.failed} failed, "
            f"{rate:.0f} {self.unit}s/s, {now - self._started:.0f} s"
        )
        self.write(line + "\n")


def _is_terminal(stream: Any) -> bool:
    """A terminal, or a notebook (whose stderr is not one, and shows tqdm's widget)."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or closed
        return False
    return "ipykernel" in sys.modules
