"""What every backend keeps the same way: job ids, the closed-pool guard, the counters."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

from .._errors import PoolError, copy_error
from .._ledger import Ledger
from .._options import PoolOptions
from .._segments import SegmentDir
from .._sharing import Shared
from .._stats import PoolStats
from .._tasks import Task

T = TypeVar("T")


class BackendBase:
    """The part of ``Backend`` that does not depend on where jobs run."""

    def __init__(self, options: PoolOptions, retry: Callable[[list[Task]], None]) -> None:
        self.task_timeout = options.task_timeout
        self.segments: SegmentDir | None = None  # a backend whose workers share memory sets it
        # Guards what caller threads share with the backend's own thread.
        self._lock = threading.Lock()
        self._next_job_id = 0
        self._closing = False
        self._broken: PoolError | None = None
        self._completed = 0
        self._restarts = 0
        self._ledger = Ledger(options.retries, retry, self._count_completed)
        # Set once the backend has nothing left to look after. An Event, not
        # Thread.join(): a signal that interrupts a join marks the thread as
        # stopped while it still runs (CPython gh-90882), and every wait after
        # that would return at once.
        self._done = threading.Event()
        self.owner_pid = os.getpid()  # the process whose pool this is (see disown)

    def share(self, value: T) -> Shared[T]:
        """``value`` for many jobs; here by value (a backend whose workers can map the
        caller's memory shares it there)."""
        return Shared(None, by_value=value)

    @property
    def running(self) -> bool:
        """Jobs or workers are still being looked after."""
        return not self._done.is_set()

    @property
    def closing(self) -> bool:
        """``shutdown()`` or ``stop()`` was called: no job is accepted any more."""
        return self._closing

    def join(self, timeout: float | None) -> bool:
        """Wait until ``running`` is false; whether it is."""
        return self._done.wait(timeout)

    def disown(self) -> None:
        """This process is a child forked from the pool's: the pool is not its own.

        Runs in the child right after the fork, where any lock may have been
        copied taken: it takes none. From here on the pool refuses jobs, and
        ``shutdown()`` and ``stop()`` do nothing, for they would reach the
        parent's workers.
        """
        self._done = threading.Event()
        self._done.set()

    @property
    def disowned(self) -> bool:
        """This process did not create the pool (the pid, not a flag: a fork made from C
        code runs no fork hook)."""
        return self.owner_pid != os.getpid()

    def reserve_job_ids(self, count: int) -> int:
        if self.disowned:
            raise RuntimeError(self._not_ours())
        with self._lock:
            first = self._next_job_id
            self._next_job_id += count
            return first

    def _not_ours(self) -> str:
        return (
            f"this pool belongs to process {self.owner_pid}, which forked this one (pid "
            f"{os.getpid()}); a forked process cannot use its parent's pool. Create a new "
            "minipool.Pool in the child, or fork before creating the pool."
        )

    def _admit(self, tasks: list[Task]) -> None:
        """Count ``tasks`` in, or refuse them (call with ``_lock`` held)."""
        if self._broken is not None:
            raise copy_error(self._broken)
        if self._closing:
            raise RuntimeError(
                "cannot submit jobs to a pool that was shut down or stopped; "
                "create a new minipool.Pool"
            )
        for task in tasks:  # a loop: cheaper than sum() of a generator for one task
            self._ledger.submitted += task.size

    def _count_completed(self, count: int) -> None:
        self._completed += count

    def stats(self) -> PoolStats:
        if self.disowned:
            raise RuntimeError(self._not_ours())
        ledger = self._ledger
        return PoolStats(
            submitted=ledger.submitted,
            completed=self._completed,
            failed=ledger.failed,
            retried=ledger.retried,
            running=self._running_jobs(),
            workers_alive=self._workers_alive(),
            worker_restarts=self._restarts,
        )

    def _running_jobs(self) -> int:
        raise NotImplementedError

    def _workers_alive(self) -> int:
        raise NotImplementedError
