"""The pool's shared memory: the pool-wide flags and counters, and each worker's gate.

``SharedState`` is lock-free on purpose. ``multiprocessing.Event`` and a
locked ``Value`` guard themselves with a semaphore; a worker SIGKILLed while
holding it (in ``Event.is_set()``, say) would leave it taken forever, and the
master's next ``set()`` would hang. Each of its cells has exactly one writer,
and an aligned 8-byte store cannot be torn by a process dying:

- ``stop``: written by the master, read by workers (``stop_requested()``).
- ``completed``: written by the master as outcomes arrive; read by ``stats``.

A ``Gate`` belongs to one worker process and decides, for each task the
master sent it, whether the worker starts it or the master takes it back —
never both. Deciding that needs an atomic read-modify-write between two
processes (plain shared cells cannot do it: consensus between two processes
is impossible with reads and writes alone), so the gate has a lock of its
own, shared by that one worker and the master, and by nobody else:

- the worker *claims* each task under the lock before it starts it, unless
  the master revoked it; a claimed task is running, and can no longer be
  cancelled or taken back;
- the master (or a caller's ``Future.cancel()``) *revokes* tasks under the
  lock, only those not claimed; the worker then skips them unread.

A worker killed while it holds the lock (for the microseconds of a claim)
leaves it taken: that lock dies with that worker, because a replacement gets a
gate of its own, and the master only ever waits for it with a deadline.

Besides the lock, a gate holds these cells:

- ``claimed``: the worker's count of the last task it claimed (tasks are
  numbered 1, 2, ... in the order the master sent them, on both sides).
- ``running``: the id of the job in hand, from before its arguments are
  unpickled (when the task holds only that job) until its result is pickled;
  ``IDLE`` between jobs; ``CHUNK_WIDE`` while the worker works on a claimed
  task as a whole (unpickling several jobs' arguments, running an untracked
  chunk, pickling its results). The master reads it when the worker dies, to
  blame the job that was provably running (see ``blame``), and to time jobs.
- ``started``: for a task with a ``task_timeout``, the ``time.monotonic()``
  (system-wide) at which the job in ``running`` began; written before
  ``running``, so a master that sees a job's id sees its start.
- ``revoked``: a ring of the task numbers taken back, written under the lock
  by whoever revokes; the slot of task ``n`` is ``n % RING``, so no more than
  ``RING`` tasks may wait at a worker to be read (see ``handle.has_room``).
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Iterable
from multiprocessing.sharedctypes import RawArray, RawValue
from time import monotonic
from typing import Any

from ..._context import CLAIMED_CELL, IDLE, RUNNING_CELL

# How many tasks may wait at one worker at once (see the revoked ring).
# Far more than dispatch ever keeps there: each costs 8 bytes of shared memory.
RING = 1024
# How long the master, or a caller cancelling a job, waits for a worker's
# gate lock. A live worker holds it for microseconds; one that died holding it
# never lets go, and the job then counts as not revocable.
GATE_TIMEOUT_SECONDS = 1.0


class SharedState:
    def __init__(self) -> None:
        self._stop = RawValue(ctypes.c_int8, 0)
        self._completed = RawValue(ctypes.c_uint64, 0)

    @property
    def stop_requested(self) -> bool:
        return bool(self._stop.value)

    def request_stop(self) -> None:
        self._stop.value = 1

    @property
    def completed(self) -> int:
        return int(self._completed.value)

    def add_completed(self, count: int) -> None:
        self._completed.value += count


class Gate:
    """One worker's claims on the tasks sent to it; see the module docstring."""

    def __init__(self, ctx: Any) -> None:
        self._lock = ctx.Lock()
        self._jobs = RawArray(ctypes.c_int64, [0, IDLE])
        self._started = RawArray(ctypes.c_double, 1)
        self._revoked = RawArray(ctypes.c_int64, RING)
        # The master's process: the only one that may revoke. A process forked
        # from it (a fork-started worker among them) has copies of the caller's
        # maps and futures, which it may tear down (a thread's frames are freed
        # in a fork child: a map iterator held only there closes, and abandons
        # its chunks); revoking then would take tasks from live workers that
        # the master still waits for.
        self._owner = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        # The cached views do not pickle; each process makes its own.
        return {name: value for name, value in vars(self).items() if name.startswith("_")}

    @functools.cached_property
    def jobs(self) -> memoryview[int]:
        """``int64`` cells: the last task claimed, and the job in hand (``running``)."""
        return memoryview(self._jobs).cast("B").cast("q")

    @functools.cached_property
    def started(self) -> memoryview[float]:
        """One ``double`` cell: when the timed job in hand started (``time.monotonic()``)."""
        return memoryview(self._started).cast("B").cast("d")

    @functools.cached_property
    def _ring(self) -> memoryview[int]:
        return memoryview(self._revoked).cast("B").cast("q")

    # ---- the worker ----------------------------------------------------------------

    def claim(self, task: int, job: int, timed: bool) -> bool:
        """Start task number ``task`` unless it was revoked, holding ``job`` (its one job's
        id, or ``CHUNK_WIDE``); a ``timed`` task's clock starts now."""
        with self._lock:
            if self._ring[task % RING] == task:
                return False
            if timed:
                self.started[0] = monotonic()
            jobs = self.jobs
            jobs[CLAIMED_CELL] = task
            jobs[RUNNING_CELL] = job
            return True

    # ---- the master, and callers cancelling jobs -------------------------------------

    @property
    def claimed(self) -> int:
        return int(self.jobs[CLAIMED_CELL])

    @property
    def running(self) -> int:
        return int(self.jobs[RUNNING_CELL])

    def was_revoked(self, task: int) -> bool:
        """Whether task number ``task`` was taken back, so that the worker skips it (read
        without the lock: a revoke is never undone; a later one may hide it, in RING)."""
        return bool(self._ring[task % RING] == task)

    def has_started(self, task: int) -> bool:
        """Whether the worker claimed task number ``task`` (one not revoked)."""
        return bool(self.jobs[CLAIMED_CELL] >= task)

    def revoke(self, tasks: Iterable[int]) -> list[int] | None:
        """Take back those of ``tasks`` not claimed yet; None if the lock stays taken, or
        if this is not the master's process."""
        if os.getpid() != self._owner or not self._lock.acquire(timeout=GATE_TIMEOUT_SECONDS):
            return None
        try:
            claimed = self.jobs[CLAIMED_CELL]
            revoked = [task for task in tasks if task > claimed]
            for task in revoked:
                self._ring[task % RING] = task
            return revoked
        finally:
            self._lock.release()
