"""What a job can ask about the worker it runs in.

One ``WorkerContext`` exists per worker process, installed by the worker loop
before ``init`` runs; in the caller there is none, which is how
``worker_state()`` knows it was called in the wrong place.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from operator import length_hint
from typing import Any

from ._shared import IDLE, SharedState


@dataclass(slots=True)
class WorkerContext:
    worker_id: int
    shared: SharedState
    state: Any = None
    logger: Any = None  # the structlog logger minipool.get_logger() binds
    # While an untracked chunk runs: its first job id, the iterator over its
    # items that map() is consuming, and how many items it has.
    untracked: tuple[int, Iterator[Any], int] | None = None

    def job_id(self) -> int | None:
        """The id of the job this worker is running now, if any."""
        if self.untracked is not None:
            # The job running is the item map() took last: no per-job cost.
            first, items, size = self.untracked
            return first + size - length_hint(items) - 1
        job = self.shared.running_slots[self.worker_id]
        return None if job == IDLE else job


_current: WorkerContext | None = None


def install(context: WorkerContext | None) -> None:
    global _current
    _current = context


def current() -> WorkerContext | None:
    return _current


def worker_state() -> Any:
    """The value ``init`` returned (or yielded) in this worker; ``None`` without ``init``.

    Raises ``RuntimeError`` outside a minipool worker.
    """
    if _current is None:
        raise RuntimeError(
            "minipool.worker_state() is only available inside a job running in a "
            "minipool worker; in the caller, keep a reference to the state you need."
        )
    return _current.state


def stop_requested() -> bool:
    """True once ``Pool.stop()`` was called; long jobs may check it to end early.

    Always ``False`` outside a worker.
    """
    return _current is not None and _current.shared.stop_requested
