"""What a job can ask about the worker it runs in.

One ``WorkerContext`` exists per worker process, installed by the worker loop
before ``init`` runs; in the caller there is none, which is how
``worker_state()`` knows it was called in the wrong place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._shared import SharedState


@dataclass(slots=True)
class WorkerContext:
    worker_id: int
    shared: SharedState
    state: Any = None


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
