"""``Pool.stats``: a snapshot of what a pool has done."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PoolStats:
    """Counts taken at one moment; the object never changes afterwards.

    ``completed`` counts jobs that ended with an outcome, a result or an error;
    ``failed`` counts those of them that ended with an error. ``running``
    counts jobs a worker has started and not finished (a job sent to a worker
    that has not started it is still pending).
    """

    submitted: int
    completed: int
    failed: int
    retried: int
    running: int
    workers_alive: int
    worker_restarts: int
