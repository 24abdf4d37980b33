"""What a job can ask about the worker it runs in.

One ``WorkerContext`` exists per worker process, installed by the worker loop
before ``init`` runs; in the caller there is none, which is how
``worker_state()`` knows it was called in the wrong place. A Dask worker runs
jobs of several pools in several threads, so there each job's thread has its
own (``in_this_thread``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from operator import length_hint
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._segments import SegmentDir

# What a worker's running-job cell holds (besides the id of the job in hand):
# IDLE between jobs; CHUNK_WIDE while it works on a task as a whole, with no
# one job of it to name (see _backends.processes.shared).
IDLE = -1
CHUNK_WIDE = -2
# The cells of JobCells.jobs.
CLAIMED_CELL, RUNNING_CELL = 0, 1


class StopFlag(Protocol):
    @property
    def stop_requested(self) -> bool: ...


class JobCells(Protocol):
    """Where a worker publishes the job in hand (a ``_backends.processes.shared.Gate``,
    or in a Dask job thread a stand-in that nobody reads)."""

    @property
    def jobs(self) -> Any: ...  # int64 cells: [CLAIMED_CELL] a task number, [RUNNING_CELL] a job

    @property
    def started(self) -> Any: ...  # one double cell: a timed job's monotonic() start


@dataclass(slots=True)
class WorkerContext:
    worker_id: int
    shared: StopFlag
    cells: JobCells
    state: Any = None
    logger: Any = None  # the structlog logger minipool.get_logger() binds
    # While an untracked chunk runs: its first job id, the iterator over its
    # items that map() is consuming, and how many items it has.
    untracked: tuple[int, Iterator[Any], int] | None = None
    # True in a process that a job forked: the worker's copy, which must end
    # before it gets back to the worker's loop (see _execute.leave_forked_child).
    forked: bool = False
    # Runs of the jobs in hand that failed already (``retries``): 0 on a first run.
    attempts: int = 0
    # Where large result buffers go (see _segments); None on Dask: through the wire.
    segments: SegmentDir | None = None

    def job_id(self) -> int | None:
        """The id of the job this worker is running now, if any."""
        if self.untracked is not None:
            # The job running is the item map() took last: no per-job cost.
            first, items, size = self.untracked
            return first + size - length_hint(items) - 1
        job = int(self.cells.jobs[RUNNING_CELL])
        return None if job < 0 else job


_current: WorkerContext | None = None
_per_thread = threading.local()


def install(context: WorkerContext | None) -> None:
    global _current
    _current = context


@contextlib.contextmanager
def in_this_thread(context: WorkerContext) -> Iterator[None]:
    """``context`` is the current one in this thread while the block runs."""
    _per_thread.context = context
    try:
        yield
    finally:
        _per_thread.context = None


def current() -> WorkerContext | None:
    if _current is not None:
        return _current
    return getattr(_per_thread, "context", None)


def worker_state() -> Any:
    """The value ``init`` returned (or yielded) in this worker; ``None`` without ``init``.

    Raises ``RuntimeError`` outside a minipool worker.
    """
    context = current()
    if context is None:
        raise RuntimeError(
            "minipool.worker_state() is only available inside a job running in a "
            "minipool worker; in the caller, keep a reference to the state you need."
        )
    return context.state


def stop_requested() -> bool:
    """True once ``Pool.stop()`` was called; long jobs may check it to end early.

    Always ``False`` outside a worker.
    """
    context = current()
    return context is not None and context.shared.stop_requested
