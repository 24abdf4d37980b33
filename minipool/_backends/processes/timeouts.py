"""``task_timeout``: when the master must wake up, and which workers have overrun.

A timed job's clock starts when its worker claims its task (a task of one
job: its arguments' unpickling counts) or starts the job, and runs until its
result is pickled: the worker stamps the start in its gate before it
publishes the job's id there (see ``shared.Gate``). The master reads both and
sleeps in its ``select()`` until the earliest deadline it can know. A worker
that holds timed tasks but is not in one cannot overrun before ``now`` plus
the shortest timeout it holds, which bounds the sleep without polling.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from time import monotonic

from ..._context import IDLE
from .handle import Life, WorkerHandle


def seconds_left(workers: Sequence[WorkerHandle | None]) -> float | None:
    """How long the master may sleep; None when no job has a timeout."""
    now = monotonic()
    deadlines = [deadline for _, _, deadline in _timed(workers, now)]
    return max(0.0, min(deadlines) - now) if deadlines else None


def expire(workers: Sequence[WorkerHandle | None]) -> None:
    """SIGKILL each worker whose job has overrun; its exit settles the job as TaskTimeout."""
    now = monotonic()
    for worker, job, deadline in _timed(workers, now):
        if job != IDLE and now >= deadline:
            worker.kill_for(job)


def _timed(
    workers: Sequence[WorkerHandle | None], now: float
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
