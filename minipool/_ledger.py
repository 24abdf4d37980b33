"""Every backend's bookkeeping of outcomes: deliver each job's once, or run it again.

A backend hands the ``Ledger`` what came back for a task (the pickled
``Outcome`` a worker wrote, or an error that stands for every job of it); the
ledger rebuilds the exceptions, runs failed jobs again while ``retries`` allow
(through the backend's ``retry``), delivers the rest to the task's receiver,
and keeps the counts ``Pool.stats`` reports. The process pool's master and the
Dask backend both settle outcomes here, so ``retries`` cannot mean two things.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._errors import PoolError, RemoteError, note_attempts
from ._messages import Outcome
from ._pickling import loads, rebuild_exception
from ._tasks import Task


class Ledger:
    """Settles outcomes; called from one thread (the master's, or Dask's callback thread)."""

    def __init__(
        self,
        retries: int,
        retry: Callable[[list[Task]], None],
        count_completed: Callable[[int], None],
    ) -> None:
        self.retries = retries
        self._retry = retry  # puts tasks back in front of the queue, in order
        self._count_completed = count_completed
        self.submitted = 0  # counted by the backend, under its own lock
        self.failed = 0
        self.retried = 0

    def settle(self, task: Task, payload: bytes | memoryview) -> Outcome | None:
        """Settle ``task`` from a worker's pickled ``Outcome``; return it, None if unreadable."""
        try:
            outcome: Outcome = loads(payload)
        except Exception as error:
            self.fail(task, _unreadable_results(task, error))
            return None
        if outcome.values is None:  # the chunk itself did not unpickle in the worker
            assert outcome.errors is not None
            self.fail(task, rebuild_exception(outcome.errors[0]))
            return None
        errors = {}
        if outcome.errors:
            errors = {
                position: rebuild_exception(info) for position, info in outcome.errors.items()
            }
        self.finish(task, outcome.values, errors, outcome.seconds, len(payload))
        return outcome

    def finish(
        self,
        task: Task,
        values: list[Any],
        errors: dict[int, BaseException],
        seconds: float = 0.0,
        nbytes: int = 0,
    ) -> None:
        """Deliver the outcomes of ``task``'s jobs; failed ones with retries left run again.

        ``seconds`` and ``nbytes``: how long the worker ran them and how big
        their pickled outcome was, for sizing later chunks.
        """
        if not errors or task.attempts >= self.retries:
            if errors and self.retries:
                for error in errors.values():
                    note_attempts(error, task.attempts + 1)
            self.deliver(task, 0, values, errors, seconds, nbytes)
            return
        failed = sorted(errors)
        self.retried += len(failed)
        self._retry(
            [task.part(position, position + 1, attempts=task.attempts + 1) for position in failed]
        )
        start = 0
        for stop in [*failed, task.size]:  # the runs of successes between failures
            if stop > start:
                self.deliver(task, start, values[start:stop], {}, 0.0)
            start = stop + 1

    def deliver(
        self,
        task: Task,
        start: int,
        values: list[Any],
        errors: dict[int, BaseException],
        seconds: float,
        nbytes: int = 0,
    ) -> None:
        """Outcomes for ``task``'s jobs from ``start`` on, to the caller, no retry."""
        # Count first: a done-callback or a woken caller must see the job counted.
        self.failed += len(errors)
        self._count_completed(len(values))
        task.receiver.deliver(task.offset + start, values, errors, seconds, nbytes)

    def fail(self, task: Task, error: BaseException) -> None:
        """Every job of ``task`` fails with ``error``, not retried (it would fail again)."""
        if task.receiver.start():
            errors = dict.fromkeys(range(task.size), error)
            self.deliver(task, 0, [None] * task.size, errors, 0.0)


def _unreadable_results(task: Task, error: Exception) -> PoolError:
    last = task.first_job_id + task.size - 1
    return RemoteError(
        type(error).__qualname__,
        f"the results of jobs {task.first_job_id}..{last} could not be unpickled in the "
        f"caller: {error}. Return values whose classes the caller can import.",
    )
