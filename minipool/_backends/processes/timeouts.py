"""``task_timeout``: when the master must wake up, and which workers have overrun.

A timed job stamps its start (``time.monotonic()``, system-wide) into its
worker's ``started`` slot before it publishes its id in ``running``; the
master reads both and sleeps in its ``select()`` until the earliest deadline
it can know. A worker that holds timed jobs but has not started one yet
cannot overrun before ``now`` plus the shortest timeout it holds, which
bounds the sleep without polling.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from time import monotonic

from ..._context import IDLE
from ..._tasks import Task
from .handle import WorkerHandle
from .shared import SharedState


class TimeoutWatch:
    def __init__(self, shared: SharedState) -> None:
        self._shared = shared

    def seconds_left(self, workers: Sequence[WorkerHandle | None]) -> float | None:
        """How long the master may sleep; None when no job has a timeout."""
        now = monotonic()
        deadlines = [
            (since if since is not None else now) + timeout
            for _, _, since, timeout in self._timed(workers)
        ]
        return max(0.0, min(deadlines) - now) if deadlines else None

    def expire(self, workers: Sequence[WorkerHandle | None]) -> None:
        """SIGKILL each worker whose job has overrun; its exit settles the job as TaskTimeout."""
        now = monotonic()
        for worker, job_id, since, timeout in self._timed(workers):
            if since is not None and now - since >= timeout:
                worker.timed_out = job_id
                worker.process.kill()

    def _timed(
        self, workers: Sequence[WorkerHandle | None]
    ) -> Iterator[tuple[WorkerHandle, int, float | None, float]]:
        """Each worker holding timed jobs: the job it runs, since when (None: none yet), timeout."""
        running = self._shared.running_slots
        started = self._shared.started_slots
        for worker in workers:
            if worker is None or worker.timed_out is not None or not worker.timed_tasks:
                continue
            slot = worker.slot
            job_id = running[slot]
            since = started[slot]
            task = _task_of(worker.in_flight, job_id)
            if task is None or task.timeout is None or running[slot] != job_id:
                yield worker, job_id, None, worker.shortest_timeout()
            else:
                yield worker, job_id, since, task.timeout


def _task_of(tasks: Iterable[Task], job_id: int) -> Task | None:
    if job_id == IDLE:
        return None
    for task in tasks:
        if task.first_job_id <= job_id < task.first_job_id + task.size:
            return task
    return None
