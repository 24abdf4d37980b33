"""Where each task goes: the queue of tasks no worker holds, and the rules that move them.

- **Dispatch.** The least loaded worker that takes tasks gets the task at the
  head of the queue, while it holds fewer jobs than ``JobTimer`` says cover
  ``PREFETCH_SECONDS`` (and at least ``MIN_TASKS_IN_FLIGHT`` tasks, so that it
  never waits on the master between two).
- **Rebalance.** Prefetching means a task may wait at a worker behind a job of
  unknown length. So once the queue is empty and a worker is idle, the tasks
  that busy workers hold but have not started are taken back (see
  ``shared.Gate``) and dispatched again; a worker they were taken from is
  *stalled* and gets no more until its long job ends (or its init, for a
  worker still starting). No job then waits behind another while a worker is
  idle. A worker that holds tasks but is between two of them may be about to
  start a long one, and starting a job is no event the master hears of: while
  a worker idles beside such tasks, the master looks again every
  ``RECHECK_SECONDS`` (``recheck``). Otherwise it looks only after what can
  make a worker idle or empty the queue (``changed``): a worker's last
  outcome, its ``READY``, a death, a dispatch, a caller's cancel of tasks that
  wait at a worker (which skips them without a word: the master forgets them
  when the caller revokes them, ``forget_revoked``).
- **Requeue.** The jobs of a dead worker go back to the front of the queue in
  crash-safe pieces; a job that failed and may run again goes there as it is.

Rejected: never prefetching behind a job of unknown length (every job's
length is unknown until it ends, and a worker that waits on the master
between two jobs loses a round trip per job: a third of the throughput on
millisecond jobs); taking back half of a busy worker's queue, as work
stealing in thread pools does (the busy worker is the one *not* getting
through its queue: it keeps none).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence

from ..._scheduling import MAX_JOBS_IN_FLIGHT, MIN_TASKS_IN_FLIGHT, JobTimer, crash_safe_jobs
from ..._tasks import Task
from .handle import Life, WorkerHandle

# How soon the master looks again at tasks that wait, unstarted, at a worker
# between two jobs while another worker idles: what a job that starts long then
# costs the tasks behind it. Only in that state does the master wake for it.
RECHECK_SECONDS = 0.01


class Dispatcher:
    """The master's queue of tasks and its placement rules; used from the master thread only
    (callers append to ``pending`` under the master's lock)."""

    def __init__(self, max_tasks_per_worker: int | None, completed: Callable[[], int]) -> None:
        self.pending: deque[Task] = deque()
        self.timer = JobTimer()
        self.crashes = 0  # worker deaths that cost jobs (crashes, timeouts)
        self.recheck = False  # rebalance again in RECHECK_SECONDS (see the module's docstring)
        # Since the last rebalance, a worker may have become idle (its last
        # outcome, its READY, a death) or the queue emptied: only then, or on
        # a recheck, can taking back find anything new. Scanning every worker
        # after every round of events cost a fifth of the master's time at 32.
        self.changed = False
        self._max_tasks = max_tasks_per_worker
        self._completed = completed

    def crash_safe_jobs(self) -> int | None:
        """How many jobs a chunk should hold, given how often workers die here."""
        return crash_safe_jobs(self.crashes, self._completed())

    def dispatch(self, workers: Sequence[WorkerHandle | None]) -> None:
        pending = self.pending
        if not pending:
            return
        # A worker's death costs every job it holds whose result it had not
        # sent: where workers die, they hold no more than a crash-safe chunk.
        cap = min(self.timer.jobs_in_flight_cap(), self.crash_safe_jobs() or MAX_JOBS_IN_FLIGHT)
        while pending:
            worker = _least_loaded(workers)
            if worker is None:
                return
            task = pending[0]
            busy = len(worker.held) >= MIN_TASKS_IN_FLIGHT
            if busy and worker.jobs_in_flight + task.size > cap:
                return
            pending.popleft()
            self._send(worker, task)
        self.changed = True  # the queue is empty: an idle worker may take back work

    def _send(self, worker: WorkerHandle, task: Task) -> None:
        limit = self._max_tasks
        if limit is not None:
            budget = limit - worker.jobs_sent
            if task.size > budget:
                self.pending.appendleft(task.part(budget, task.size))
                task = task.part(0, budget)
        held = worker.hold(task)
        if not task.receiver.place(held):
            return  # its caller cancelled it
        worker.send(held)
        if limit is not None and worker.jobs_sent >= limit:
            worker.retire()

    def rebalance(self, workers: Sequence[WorkerHandle | None]) -> None:
        """With nothing queued and a worker idle, take back what busy workers have not started."""
        if not (self.changed or self.recheck):
            return
        self.changed = self.recheck = False
        if self.pending or not any(_idle(worker) for worker in workers):
            return
        for worker in workers:
            if worker is None or worker.life is Life.KILLED:
                continue
            if not worker.busy_elsewhere:
                self.recheck = self.recheck or worker.holds_unstarted
                continue
            taken = worker.take_back()
            if taken:
                worker.stalled = True  # until its long job or its init ends
                for held in taken:
                    held.task.receiver.unplace(held)
                self.pending.extend(held.rest() for held in taken)
        self.dispatch(workers)

    def forget_revoked(self, workers: Iterable[WorkerHandle]) -> None:
        """Callers cancelled tasks that wait at ``workers``, which skip them without a word:
        forget them now, or those workers would look busy, even when idle."""
        for worker in workers:
            if _drop_revoked(worker):
                self.changed = True

    def cancel_unstarted(self, workers: Sequence[WorkerHandle | None], reason: str) -> None:
        """Cancel every job no worker has started: those queued, and those taken back."""
        pending = self.pending
        while pending:
            task = pending.popleft()
            task.receiver.cancel(task.offset, task.size, reason)
        for worker in workers:
            if worker is not None and worker.life is not Life.KILLED:
                for held in worker.take_back() or ():
                    held.task.receiver.unplace(held)
                    rest = held.rest()
                    rest.receiver.cancel(rest.offset, rest.size, reason)

    def work_left(self, workers: Sequence[WorkerHandle | None]) -> bool:
        """Jobs queued, or held by a worker for a caller who still wants them."""
        if self.pending:
            return True
        live = (worker for worker in workers if worker is not None)
        return any(not held.task.receiver.abandoned for worker in live for held in worker.held)

    def requeue(self, tasks: list[Task]) -> None:
        """Put the jobs of a dead worker back at the front of the queue, in order.

        In crash-safe pieces: whole, a big chunk would likely die again and
        take with it the results of every job it had run.
        """
        piece = self.crash_safe_jobs() or 1 << 30
        self.pending.extendleft(
            part for task in reversed(tasks) for part in reversed(task.pieces(piece))
        )

    def retry(self, tasks: list[Task]) -> None:
        """Failed jobs with retries left: next in line."""
        self.pending.extendleft(reversed(tasks))


def _least_loaded(workers: Sequence[WorkerHandle | None]) -> WorkerHandle | None:
    best = None
    for worker in workers:
        # Once per task dispatched: the cheap tests first, takes_tasks last.
        if worker is None or not worker.accepting:
            continue
        if best is not None and worker.jobs_in_flight >= best.jobs_in_flight:
            continue
        if worker.takes_tasks:
            best = worker
    return best


def _drop_revoked(worker: WorkerHandle) -> bool:
    """Forget what ``worker`` holds that its callers cancelled; whether there was any."""
    dropped = worker.drop_revoked()
    for held in dropped:
        held.task.receiver.unplace(held)
    return bool(dropped)


def _idle(worker: WorkerHandle | None) -> bool:
    return worker is not None and worker.life is Life.SERVING and not worker.held
