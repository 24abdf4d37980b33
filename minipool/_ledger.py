"""Every backend's bookkeeping of outcomes: deliver each job's once, or run it again.

A backend hands the ``Ledger`` what came back for a task (an ``Outcome`` a
worker wrote, or an error that stands for every job of it); the ledger
rebuilds the values and exceptions, runs failed jobs again while ``retries``
allow (through the backend's ``retry``), delivers the rest to the task's
receiver, and keeps the counts ``Pool.stats`` reports. The process pool's
master and the Dask backend both settle outcomes here, so ``retries`` cannot
mean two things.

Whatever unpickling a value or an exception raises (``BaseException``
included: it is the user's ``__reduce__`` that runs) is that job's error, so
the thread that settles outcomes never dies of it and the other jobs of the
chunk keep their results.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from ._errors import RemoteError, note_attempts
from ._messages import Outcome
from ._pickling import loads_value, rebuild_exception, unwrap
from ._salvage import load_each
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

    def settle(self, task: Task, outcome: Outcome, nbytes: int = 0) -> None:
        """Settle the jobs of ``task`` that ``outcome`` covers, from its ``offset`` on."""
        values, errors = _decode(task, outcome)
        self.finish(task, values, errors, outcome.seconds, nbytes, outcome.offset)

    def finish(
        self,
        task: Task,
        values: list[Any],
        errors: dict[int, BaseException],
        seconds: float = 0.0,
        nbytes: int = 0,
        offset: int = 0,
    ) -> None:
        """Deliver the outcomes of ``task``'s jobs from ``offset`` on (``errors`` by
        position from there); failed ones with retries left run again.

        ``seconds`` and ``nbytes``: how long the worker ran them and how big
        their pickled outcome was, for sizing later chunks.
        """
        if not errors or task.attempts >= self.retries:
            if errors and self.retries:
                for error in errors.values():
                    note_attempts(error, task.attempts + 1)
            self.deliver(task, offset, values, errors, seconds, nbytes)
            return
        failed = sorted(errors)
        self.retried += len(failed)
        self._retry(
            [
                task.part(offset + position, offset + position + 1, attempts=task.attempts + 1)
                for position in failed
            ]
        )
        start = 0
        for stop in [*failed, len(values)]:  # the runs of successes between failures
            if stop > start:
                self.deliver(task, offset + start, values[start:stop], {}, 0.0)
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
        if not task.receiver.abandoned:
            errors = dict.fromkeys(range(task.size), error)
            self.deliver(task, 0, [None] * task.size, errors, 0.0)


def _decode(task: Task, outcome: Outcome) -> tuple[list[Any], dict[int, BaseException]]:
    """The values and exceptions of ``outcome``'s jobs, each job's failure its own."""
    errors: dict[int, BaseException] = {}
    if outcome.errors:
        errors = {position: rebuild_exception(info) for position, info in outcome.errors.items()}
    if isinstance(outcome.values, (bytes, memoryview)):  # one pickle of every value
        return _decode_batch(task, outcome, errors)
    values = [None] * outcome.size
    for position, blob in enumerate(outcome.values):
        if position in errors:
            continue
        try:
            values[position] = loads_value(blob)
        except BaseException as error:
            job = task.first_job_id + outcome.offset + position
            errors[position] = _unreadable(f"job {job}", error)
    return values, errors


def _decode_batch(
    task: Task, outcome: Outcome, errors: dict[int, BaseException]
) -> tuple[list[Any], dict[int, BaseException]]:
    """The values of an outcome whose values are one pickle (an untracked run's)."""
    assert isinstance(outcome.values, (bytes, memoryview))
    data = outcome.values
    buffers: list[memoryview] = []
    try:
        data, buffers = unwrap(data)
        values: list[Any] = pickle.loads(data, buffers=buffers)
    except BaseException as error:
        return _decode_each(task, outcome, data, buffers, errors, error)
    return values, errors


def _decode_each(
    task: Task,
    outcome: Outcome,
    data: bytes | memoryview,
    buffers: list[memoryview],
    errors: dict[int, BaseException],
    error: BaseException,
) -> tuple[list[Any], dict[int, BaseException]]:
    """The values of a batch that did not load as a whole (``error``): each job's own, or
    the error that kept it from loading."""
    first, size = task.first_job_id + outcome.offset, outcome.size
    failures: dict[int, BaseException] = {0: error}
    values: list[Any] = [None]
    if size > 1:
        try:
            values, failures = load_each(data, size, buffers)
        except ValueError:  # not a list of that many values: a bug, but not the pool's end
            whole = _unreadable(f"jobs {first}..{first + size - 1}", error)
            return [None] * size, dict.fromkeys(range(size), whole)
    for position, failure in failures.items():
        errors.setdefault(position, _unreadable(f"job {first + position}", failure))
    return values, errors


def _unreadable(jobs: str, error: BaseException) -> RemoteError:
    failure = RemoteError(
        type(error).__qualname__,
        f"the result of {jobs} could not be unpickled in the caller: {error}. Return "
        "values whose classes the caller can import.",
    )
    failure.__cause__ = error
    return failure
