"""The pool's shared memory: a stop flag, a completed-jobs counter, a slot per worker.

All three are lock-free on purpose. ``multiprocessing.Event`` and a locked
``Value`` guard themselves with a semaphore; a worker SIGKILLed while holding
it (in ``Event.is_set()``, say) would leave it taken forever, and the master's
next ``set()`` would hang. Here every cell has exactly one writer, and an
aligned 8-byte store cannot be torn by a process dying:

- ``stop``: written by the master, read by workers (``stop_requested()``).
- ``completed``: written by the master as outcomes arrive; read by ``stats``.
- ``running[w]``: written by worker slot ``w``, the id of the job it is running
  (``IDLE`` between jobs); read by the master when that worker dies, to know
  exactly which job of a chunk it died in.
- ``started[w]``: written by worker slot ``w`` for a job with a
  ``task_timeout``, the ``time.monotonic()`` at which it started (the clock is
  system-wide); read by the master to time the job out (``_timeouts``). It is written
  before ``running[w]``, so a master that sees a job's id sees its start.
"""

from __future__ import annotations

import ctypes
import functools
from multiprocessing.sharedctypes import RawArray, RawValue
from typing import Any

from ..._context import IDLE


class SharedState:
    def __init__(self, slots: int) -> None:
        self._stop = RawValue(ctypes.c_int8, 0)
        self._completed = RawValue(ctypes.c_uint64, 0)
        self._running = RawArray(ctypes.c_int64, [IDLE] * slots)
        self._started = RawArray(ctypes.c_double, slots)

    def __getstate__(self) -> dict[str, Any]:
        # The cached views do not pickle; each process makes its own.
        return {name: value for name, value in vars(self).items() if name.startswith("_")}

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

    @functools.cached_property
    def running_slots(self) -> memoryview[int]:
        """A writable ``int64`` view of the per-worker running-job slots."""
        return memoryview(self._running).cast("B").cast("q")

    @functools.cached_property
    def started_slots(self) -> memoryview[float]:
        """A writable ``double`` view of the per-worker job start times."""
        return memoryview(self._started).cast("B").cast("d")
