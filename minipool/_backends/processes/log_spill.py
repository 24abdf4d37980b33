"""A worker's log events on their way to the caller, kept where a crash cannot lose them.

Each worker slot owns one ``LogSpill``: a block of shared memory the worker
appends its pickled log events to, and writes to its results pipe as one
``LOGS`` frame (with its outcomes, when it fills, or when it has waited long
enough). The worker is its only writer; the master reads it only after the
worker has died, to deliver what the worker had logged but not yet written —
a job's last words before a segfault, a SIGKILL or ``os._exit``.

Layout, chosen so that the ``LOGS`` payload is one contiguous slice::

    [used: u64][generation: u64][u32 length, pickle][u32 length, pickle]...
               └──────────────── LOGS frame payload ───────────────────┘

``generation`` counts the worker's writes. The master remembers the
generation of the last ``LOGS`` frame it received from each worker; a dead
worker's spill holds undelivered events only if its generation differs, so an
event is delivered exactly once whether the worker died before, during or
after a write. ``used`` is stored after the bytes it covers, and the master
reads only after the process has exited, so it never sees a partial event.

Rejected: sending each event down the pipe as it is logged (a system call per
event, and a master woken per event: several times slower); buffering in the
worker's heap (lost at a crash, which is when the logs matter most).
"""

from __future__ import annotations

import functools
import struct
from multiprocessing.heap import BufferWrapper
from typing import Any

from ..._messages import pack_events

# Big enough to batch a few thousand typical events per write; a worker slot
# costs this much shared memory. An event bigger than this is written alone.
SPILL_BYTES = 256 * 1024

_COUNTERS = struct.Struct("<QQ")  # used, generation
_USED = _GENERATION = struct.Struct("<Q")
_LENGTH = struct.Struct("<I")
_DATA_START = _COUNTERS.size


class LogSpill:
    def __init__(self, size: int = SPILL_BYTES) -> None:
        # The block under RawArray, without RawArray's memset: zeroing it
        # faults in every page at pool start, 0.2 ms per worker, while only
        # the counters need zeroing, which reset() does before a worker starts.
        self._memory = BufferWrapper(_DATA_START + size)
        # The writer's own copy of what it last stored: reading it back from
        # shared memory costs more than the rest of an append.
        self.used = 0
        self._generation = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"_memory": self._memory, "used": 0, "_generation": 0}  # not the cached view

    @functools.cached_property
    def _view(self) -> memoryview:
        return self._memory.create_memoryview()

    # ---- the worker: the only writer -------------------------------------------------

    def start(self) -> None:
        """Begin empty at generation 1: the master has received generation 0 (nothing)."""
        self.used, self._generation = 0, 1
        _COUNTERS.pack_into(self._view, 0, 0, 1)

    def append(self, record: bytes) -> bool:
        """Add one pickled event; False, and nothing added, if it does not fit."""
        view = self._view
        start = _DATA_START + self.used
        end = start + _LENGTH.size + len(record)
        if end > len(view):
            return False
        _LENGTH.pack_into(view, start, len(record))
        view[start + _LENGTH.size : end] = record
        self.used = end - _DATA_START
        _USED.pack_into(view, 0, self.used)  # last: it commits the event
        return True

    def payload(self) -> memoryview:
        """The ``LOGS`` frame payload for what is held: the generation, then the events."""
        return self._view[_GENERATION.size : _DATA_START + self.used]

    def alone(self, record: bytes) -> bytes:
        """A ``LOGS`` payload for one event too big for the spill, sent while it is empty."""
        return pack_events([record], self._generation)

    def written(self) -> None:
        """The payload reached the pipe: empty the spill and move to the next generation."""
        self.used = 0
        self._generation += 1
        _COUNTERS.pack_into(self._view, 0, 0, self._generation)

    # ---- the master: after the worker has exited -------------------------------------

    def reset(self) -> None:
        """Forget a dead worker's events, before its slot gets a new worker."""
        _COUNTERS.pack_into(self._view, 0, 0, 0)

    def leftover(self, delivered_generation: int) -> memoryview | None:
        """The dead worker's undelivered payload, if any."""
        used, generation = _COUNTERS.unpack_from(self._view, 0)
        if used == 0 or generation == delivered_generation:
            return None
        return self._view[_GENERATION.size : _DATA_START + used]
