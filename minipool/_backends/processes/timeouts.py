"""Deadlines: when the master must wake up, and which workers to kill.

Two kinds: a job's ``task_timeout``, and a worker's ``exit_deadline`` (see
``handle``), by when a worker that only exits, or that was retired in its
init, must be gone.

A timed job's clock starts when its worker claims its task (a task of one
job: its arguments' unpickling counts) or starts the job, and runs until its
result is pickled: the worker stamps the start in its gate before it
publishes the job's id there (see ``shared.Gate``). The master reads both and
sleeps in its ``select()`` until the earliest deadline it can know. A worker
that holds timed tasks but is not in one cannot overrun before ``now`` plus
the shortest timeout it holds, which bounds the sleep without polling.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from time import monotonic

from ..._context import IDLE
from .handle import Life, WorkerHandle


def seconds_left(workers: Iterable[WorkerHandle | None]) -> float | None:
    """How long the master may sleep; None when there is no deadline."""
    now = monotonic()
    deadlines = [deadline for _, _, deadline in _timed(workers, now)]
    deadlines += [deadline for _, deadline in _exiting(workers)]
    return max(0.0, min(deadlines) - now) if deadlines else None


def expire(workers: Iterable[WorkerHandle | None]) -> list[str]:
    """SIGKILL each worker whose job has overrun (its exit settles the job as TaskTimeout)
    and each worker past its exit deadline; for the latter, what happened, in words."""
    now = monotonic()
    for worker, job, deadline in _timed(workers, now):
        if job != IDLE and now >= deadline:
            worker.kill_for(job)
    return [worker.kill_late() for worker, deadline in _exiting(workers) if now >= deadline]


def _exiting(workers: Iterable[WorkerHandle | None]) -> Iterator[tuple[WorkerHandle, float]]:
    """Each worker with an exit deadline, and the deadline."""
    for worker in workers:
        if worker is not None and worker.exit_deadline is not None:
            yield worker, worker.exit_deadline


def _timed(
    workers: Iterable[WorkerHandle | None], now: float
) -> Iterator[tuple[WorkerHandle, int, float]]:
    """Each worker holding timed tasks: the job in hand (IDLE: none timed) and its deadline."""
    for worker in workers:
        if worker is None or worker.life is Life.KILLED or not worker.timed_tasks:
            continue
        gate = worker.gate
        job = gate.running  # first: its start and its task were written before it
        held = worker.held_number(gate.claimed) if job != IDLE else None
        if held is not None and held.task.timeout is not None:
            yield worker, job, gate.started[0] + held.task.timeout
        else:
            yield worker, IDLE, now + worker.shortest_timeout()
