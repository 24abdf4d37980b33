"""The worker's one writer of its results pipe: outcomes, logs and lifecycle frames.

Everything a worker tells the master goes through one ``Sender``, under one
lock, because three kinds of threads write: the job's thread (outcomes,
``READY``...), the lifeline thread (see ``worker``), and any thread that logs
(a job may start threads of its own).

Outcomes wait a little to share a write: the job's thread writes them when it
runs out of work, or between tasks once the oldest has waited ``FLUSH_AFTER``.
A job that runs long must not hold back the results finished before it, in
its own chunk or in the chunks before: when the job's thread starts a job
while it holds outcomes, it *arms* the lifeline (one byte down a pipe, once per
run of held outcomes), which then wakes every ``HOLD_SECONDS`` and sends what
is held — for a chunk still running, the results of its jobs done so far, as
a partial ``Outcome`` — until nothing is held any more.

Log events wait in the worker's ``LogSpill`` (shared memory, so that the master
finds them if the worker dies) and are written before the outcomes they
precede, when the spill fills, and once the oldest is ``LOG_FLUSH_SECONDS`` old.

Rejected: streaming each tracked job's result as it finishes (a frame per
job: the master's work per job grows several times over); a lifeline that
always wakes every few milliseconds (idle workers would burn CPU, and at 64
workers that shows); sending held results from the lifeline by pickling them
there (the job's thread may be mutating the objects it returned).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable
from time import monotonic, perf_counter
from typing import Any

from ..._execute import Results
from ..._log_shipping import LOG_FLUSH_SECONDS
from ..._logging import as_event_dict
from ..._messages import LOGS, OUTCOME, UNMAPPED, Outbox, encode_event, join_paths
from ..._segment_maps import take_unmapped
from .log_spill import LogSpill

# Upper bound on how long a finished outcome waits for company while the
# worker moves from task to task. Shorter means more writes under load;
# longer delays results.
FLUSH_AFTER = 0.002
# How long outcomes may be held while a job runs (by the lifeline's clock):
# twice a map chunk's target run time, so that a chunk of the usual size never
# splits its outcome, and a slow job holds the others' results for no longer.
HOLD_SECONDS = 0.02


class Sender:
    def __init__(
        self,
        spill: LogSpill,
        results_fd: int,
        job_id: Callable[[], int | None],
        segments: str | None = None,
    ) -> None:
        spill.start()
        self._spill = spill
        self._segments = segments  # the pool's segment directory (see ended)
        self._fd = results_fd
        self._outbox = Outbox(results_fd)
        self._job_id = job_id
        self._lock = threading.Lock()
        self._oldest_log = 0.0  # when the oldest event in the spill was logged
        self._results: Results | None = None  # of the task running now
        self._armed = False
        self._disowned = False
        self.wake_reader, self._wake_writer = os.pipe()

    # ---- the job's thread ----------------------------------------------------------

    def add(self, kind: int, payload: bytes = b"") -> None:
        with self._lock:
            self._outbox.add(kind, payload)

    def flush(self) -> None:
        """Write the events held, then every frame waiting (the pipe is blocking)."""
        with self._lock, contextlib.suppress(BrokenPipeError):
            self._flush_locked()

    def flush_if_waiting(self) -> None:
        """Between tasks: write what waits if the oldest frame has waited ``FLUSH_AFTER``."""
        if self._outbox and perf_counter() - self._outbox.since > FLUSH_AFTER:
            self.flush()

    def began(self, results: Results) -> None:
        self._results = results
        self._arm_if_holding()

    def job_done(self, results: Results) -> None:
        self._arm_if_holding()

    def ended(self, results: Results) -> None:
        with self._lock:
            self._results = None
            # Before the final outcome: once the master has that, it drops the task,
            # and reuses the task's argument segment only if it knows it let go.
            unmapped = take_unmapped(self._segments) if self._segments is not None else []
            if unmapped:
                self._outbox.add(UNMAPPED, join_paths(unmapped))
            for outcome in results.take(final=True):
                self._outbox.add_parts(OUTCOME, outcome.encode())

    def _arm_if_holding(self) -> None:
        """A job is about to run: if outcomes wait, have the lifeline watch them."""
        if self._armed or not self._holding():
            # Read without the lock: only this thread adds outcomes, and only
            # the lifeline disarms, once nothing is held.
            return
        with self._lock:
            if self._holding():
                self._armed = True
                with contextlib.suppress(OSError):  # a job closed the pipe: no early sends
                    os.write(self._wake_writer, b"\0")

    def _holding(self) -> bool:
        return bool(self._outbox) or bool(self._results is not None and self._results.unsent)

    # ---- the lifeline thread -------------------------------------------------------

    def tick(self) -> float:
        """Send what has waited too long; return how long to sleep until the next tick."""
        with self._lock, contextlib.suppress(BrokenPipeError):
            if self._armed:
                self._send_held_locked()
            elif self._spill.used and monotonic() - self._oldest_log >= LOG_FLUSH_SECONDS:
                self._flush_locked()
        return HOLD_SECONDS if self._armed else LOG_FLUSH_SECONDS

    def _send_held_locked(self) -> None:
        if not self._holding():
            self._armed = False
            return
        results = self._results
        if results is not None:
            for outcome in results.take(final=False):
                self._outbox.add_parts(OUTCOME, outcome.encode())
        self._flush_locked()

    # ---- logs, from any thread -----------------------------------------------------

    def disown(self) -> None:
        """In a process a job forked: write nothing to the worker's pipe or spill from here."""
        self._disowned = True

    def ship(self, kind: int, event: Any) -> None:
        job_id = self._job_id()
        if self._disowned:  # before the lock, which the fork may have copied taken
            readable = as_event_dict(kind, job_id, event, None, os.getpid())
            print(json.dumps(readable, default=repr), file=sys.stderr, flush=True)
            return
        record = encode_event(kind, job_id, event)
        with self._lock:
            # A closed results pipe means the master is gone; the lifeline
            # thread ends this process soon, and a job's log call must not fail
            # meanwhile.
            try:  # noqa: SIM105 -- contextlib.suppress costs ~0.4 us, and this runs per event
                self._hold_event(record)
            except BrokenPipeError:
                pass

    def _hold_event(self, record: bytes) -> None:
        spill = self._spill
        if not spill.used:
            self._oldest_log = monotonic()
        if spill.append(record):
            if monotonic() - self._oldest_log >= LOG_FLUSH_SECONDS:
                self._write_events(Outbox(self._fd))
            return
        self._write_events(Outbox(self._fd))  # full: make room
        self._oldest_log = monotonic()
        if not spill.append(record):  # bigger than the whole spill: it goes alone
            alone = Outbox(self._fd)
            alone.add(LOGS, spill.alone(record))
            alone.flush()
            spill.written()

    def _flush_locked(self) -> None:
        self._write_events(self._outbox)

    def _write_events(self, outbox: Outbox) -> None:
        """Write the events held, then whatever ``outbox`` holds."""
        held = self._spill.used > 0
        if held:
            outbox.add_first(LOGS, self._spill.payload())
        outbox.flush()
        if held:
            self._spill.written()
