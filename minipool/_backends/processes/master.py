"""The master: one thread in the caller's process that owns every worker process.

  caller threads               master thread (Master._run)        worker processes
  ──────────────               ───────────────────────────        ────────────────
  Pool.submit / Pool.map
    pickle a chunk (Task)
    Master.enqueue ─► _pending ─┐
                   ─► _wakeup ──┤ one selector.select(next deadline) over:
                                │   _wakeup reader
                                │   worker.results_fd ◄── results pipe ◄── _worker._serve
                                │   worker.sentinel   ◄── process exit       (Outcome, READY,
                                │   worker.jobs_fd    ──► jobs pipe ──►     INIT_FAILED,
                                │     (only while a write is pending)       RECYCLING, LOGS;
                                │                                           reads Chunk, STOP)
                                │                      (jobs pipe HUP) ──► lifeline thread
  Future / map chunk ◄── Receiver.deliver ◄── _ledger (retries, stats) ◄── Outcome frames
  log_sink / logging ◄── LogRouter.deliver ◄── LOGS frames, and after a crash
                                               _log_spills[slot] ◄────────── LogShipper
  Pool.stats         ◄── counters, _shared.completed (Value)
                         _shared.running[slot] (Array) ◄────────────── id of the job in hand
                         _shared.started[slot] (Array) ◄────────────── its start, if timed
                         _timeouts.TimeoutWatch: deadlines, kills overrunning workers
  Pool.stop()        ──► _shared.stop (flag) ──────────────────────► checked before each chunk

Caller threads pickle their jobs themselves (so a bad argument fails at
``submit``), append the ``Task`` to ``_pending`` and write one byte to the
wakeup pipe. They never touch a worker.

The master thread is the only one that talks to workers. It sleeps in one
``select`` until a worker writes, a worker exits, a caller wakes it or a
blocked pipe becomes writable; then it delivers outcomes, settles the jobs of
dead workers, respawns them, and dispatches pending tasks to the least loaded
workers. Its pipe ends are non-blocking and it buffers what a pipe does not
take, so one slow worker can never stall it: a worker blocked writing a large
result while the master writes it a large job cannot deadlock the pool.

Each worker has a jobs pipe and a results pipe of its own. Nothing is shared
between workers, so a worker killed mid-write (SIGKILL, the OOM killer, a
segfault) cannot leave a lock taken that wedges the others — the failure that
makes ``concurrent.futures.ProcessPoolExecutor`` break its whole pool. The
master knows every task it sent to each worker, in order, and the worker
stores the id of the job it is running in its ``running`` slot; when a worker
dies, that job gets ``WorkerCrashed`` (``TaskTimeout`` if the master killed it
for overrunning) or runs again under ``retries``, and the others it held go
back to the front of ``_pending``. A worker whose jobs pipe reports a hang-up
knows the caller's process is gone, and exits.

What jobs log travels the same results pipe, in ``LOGS`` frames written just
before the outcomes they precede, and the master delivers them first: a
job's events reach the caller's logging before its future resolves. Until a
worker writes them they wait in shared memory (``_log_spills``), where the
master finds them if the worker dies first (see ``_log_spill``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import selectors
import threading
from collections import deque
from functools import partial

from ..._context import IDLE
from ..._errors import InitError, PoolError, copy_error
from ..._ledger import Ledger
from ..._logging import LogRouter, LogSink, worker_levels
from ..._messages import INIT_FAILED, LOGS, OUTCOME, READY, RECYCLING, generation_of
from ..._pickling import loads, rebuild_exception
from ..._scheduling import (
    MAX_JOBS_IN_FLIGHT,
    MIN_TASKS_IN_FLIGHT,
    TARGET_CHUNK_SECONDS,
    JobTimer,
    crash_safe_jobs,
)
from ..._stats import PoolStats
from ..._tasks import Task, locate
from .handle import WorkerHandle
from .log_spill import LogSpill
from .shared import SharedState
from .timeouts import TimeoutWatch
from .worker import WorkerConfig

# init failures in a row (across workers) before the pool gives up with
# InitError: enough to ride out a database that refused one connection, few
# enough to fail within seconds instead of respawning forever.
INIT_ATTEMPTS = 3


class Master:
    def __init__(
        self,
        *,
        workers: int,
        init: bytes | None,
        start_method: str,
        max_tasks_per_worker: int | None,
        max_worker_memory: int | None,
        task_timeout: float | None,
        retries: int,
        log_sink: LogSink | None,
        log_level: int | None,
    ) -> None:
        self.workers = workers
        self.max_tasks_per_worker = max_tasks_per_worker
        self.task_timeout = task_timeout
        self.retries = retries
        self.chunk_seconds = TARGET_CHUNK_SECONDS
        self.timer = JobTimer()
        self._ctx = multiprocessing.get_context(start_method)
        self._shared = SharedState(workers)
        self._timeouts = TimeoutWatch(self._shared)
        self._init = init
        self._max_worker_memory = max_worker_memory
        self._logs = LogRouter(log_sink)
        self._log_level = log_level
        self._log_spills = [LogSpill() for _ in range(workers)]
        # Guards what caller threads share with the master: job ids, the
        # closing flag, the wakeup pipe's lifetime.
        self._lock = threading.Lock()
        self._pending: deque[Task] = deque()
        self._next_job_id = 0
        self._closing = False
        self._cancel_pending = False
        self._broken: PoolError | None = None
        self._init_failures = 0  # in a row, across workers; reset by a successful init
        self._ledger = Ledger(retries, self._retry, self._shared.add_completed)
        self._restarts = 0
        self._crashes = 0  # worker deaths that cost jobs (crashes, timeouts)
        self._selector = selectors.DefaultSelector()
        self._wakeup_reader, self._wakeup_writer = os.pipe()
        os.set_blocking(self._wakeup_reader, False)
        os.set_blocking(self._wakeup_writer, False)
        self._wakeup_sent = False
        self._selector.register(self._wakeup_reader, selectors.EVENT_READ, self._on_wakeup)
        self._blocked_writers: set[int] = set()
        self._workers: list[WorkerHandle | None] = [None] * workers
        try:
            for slot in range(workers):
                self._spawn(slot)
        except BaseException:
            self.kill_workers()
            self._close()
            raise
        self._thread = threading.Thread(target=self._run, name="minipool-master", daemon=True)
        self._thread.start()

    # ---- called from caller threads ------------------------------------------------

    def reserve_job_ids(self, count: int) -> int:
        with self._lock:
            first = self._next_job_id
            self._next_job_id += count
            return first

    def enqueue(self, tasks: list[Task]) -> None:
        with self._lock:
            if self._broken is not None:
                raise copy_error(self._broken)
            if self._closing:
                raise RuntimeError(
                    "cannot submit jobs to a pool that was shut down or stopped; "
                    "create a new minipool.Pool"
                )
            self._pending.extend(tasks)
            self._ledger.submitted += sum(task.size for task in tasks)
            self._wake()

    def shutdown(self, *, wait: bool, cancel_pending: bool) -> None:
        with self._lock:
            self._closing = True
            self._cancel_pending = self._cancel_pending or cancel_pending
            self._wake()
        if wait and threading.current_thread() is not self._thread:
            self._thread.join()

    def stop(self) -> None:
        self._shared.request_stop()
        self.shutdown(wait=False, cancel_pending=True)

    @property
    def running(self) -> bool:
        """The master thread still runs: the pool has workers or work."""
        return self._thread.is_alive()

    def join(self, timeout: float | None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def kill_workers(self) -> None:
        """Last resort (interpreter exit, a master failure): SIGKILL every worker."""
        for worker in list(self._workers):
            if worker is not None and worker.process.exitcode is None:
                worker.process.kill()

    @property
    def stop_requested(self) -> bool:
        return self._shared.stop_requested

    def stats(self) -> PoolStats:
        alive = [worker for worker in list(self._workers) if worker is not None]
        return PoolStats(
            submitted=self._ledger.submitted,
            completed=self._shared.completed,
            failed=self._ledger.failed,
            retried=self._ledger.retried,
            running=sum(worker.jobs_in_flight for worker in alive),
            workers_alive=len(alive),
            worker_restarts=self._restarts,
        )

    def _wake(self) -> None:
        # Called with _lock held, which keeps the pipe open while we write and
        # orders this against _on_wakeup. The byte goes first: a Ctrl-C between
        # the two lines then costs a spare wakeup, not every later one.
        if self._wakeup_sent or self._wakeup_writer < 0:
            return
        with contextlib.suppress(BlockingIOError):  # full of wakeups already
            os.write(self._wakeup_writer, b"\0")
        self._wakeup_sent = True

    # ---- the master thread ---------------------------------------------------------

    def _run(self) -> None:
        try:
            while any(worker is not None for worker in self._workers):
                for key, _ in self._selector.select(self._timeouts.seconds_left(self._workers)):
                    key.data()
                self._timeouts.expire(self._workers)
                self._advance()
        except BaseException as error:
            self._abandon(error)
            raise
        finally:
            self._close()

    def _advance(self) -> None:
        """What to do after each round of events: cancel, dispatch, retire, write."""
        if self._cancel_pending:
            while self._pending:
                self._pending.popleft().receiver.cancel("the pool was shut down before it ran")
        if self._shared.stop_requested or self._broken is not None:
            self._retire_all()
        else:
            self._dispatch()
            if self._closing and not self._pending and not self._jobs_in_flight():
                self._retire_all()
        for worker in self._workers:
            if worker is not None and worker.outbox:
                self._flush(worker)

    def _dispatch(self) -> None:
        # A worker's death costs every job it holds whose result it had not
        # sent: where workers die, they hold no more than a crash-safe chunk.
        cap = min(self.timer.jobs_in_flight_cap(), self.crash_safe_jobs() or MAX_JOBS_IN_FLIGHT)
        pending = self._pending
        while pending:
            worker = self._least_loaded()
            if worker is None:
                return
            task = pending[0]
            busy = len(worker.in_flight) >= MIN_TASKS_IN_FLIGHT
            if busy and worker.jobs_in_flight + task.size > cap:
                return
            pending.popleft()
            if task.receiver.start():
                self._send(worker, task)

    def _least_loaded(self) -> WorkerHandle | None:
        best = None
        for worker in self._workers:
            if worker is None or worker.retiring:
                continue
            if best is None or worker.jobs_in_flight < best.jobs_in_flight:
                best = worker
        return best

    def _send(self, worker: WorkerHandle, task: Task) -> None:
        limit = self.max_tasks_per_worker
        if limit is not None:
            budget = limit - worker.jobs_sent
            if task.size > budget:
                self._pending.appendleft(task.part(budget, task.size))
                task = task.part(0, budget)
        worker.send(task)
        if limit is not None and worker.jobs_sent >= limit:
            worker.retire()

    def _retire_all(self) -> None:
        for worker in self._workers:
            if worker is not None:
                worker.retire()

    def _jobs_in_flight(self) -> int:
        return sum(worker.jobs_in_flight for worker in self._workers if worker is not None)

    def _flush(self, worker: WorkerHandle) -> None:
        if self._workers[worker.slot] is not worker:
            return
        done = worker.flush()
        fd = worker.jobs_fd
        if done and fd in self._blocked_writers:
            self._blocked_writers.discard(fd)
            self._selector.unregister(fd)
        elif not done and fd not in self._blocked_writers:
            self._blocked_writers.add(fd)
            self._selector.register(fd, selectors.EVENT_WRITE, partial(self._flush, worker))

    # ---- events --------------------------------------------------------------------

    def _on_wakeup(self) -> None:
        # Under the lock, so no caller sets the flag between the drain and the
        # clear; whatever callers queued before, _advance() picks up next.
        with self._lock:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wakeup_reader, 4096):
                    pass
            self._wakeup_sent = False

    def _on_results(self, worker: WorkerHandle) -> None:
        if self._workers[worker.slot] is not worker:
            return  # an event from before the worker's exit was handled
        for kind, payload in worker.read():
            if kind == OUTCOME:
                self._on_outcome(worker, payload)
            elif kind == READY:
                self._on_ready(worker)
            elif kind == INIT_FAILED:
                self._on_init_failed(worker, payload)
            elif kind == LOGS:
                worker.log_generation = generation_of(payload)
                self._logs.deliver(worker.slot, worker.pid, payload)
            elif kind == RECYCLING:
                worker.retiring = worker.recycling = True

    def _on_outcome(self, worker: WorkerHandle, payload: memoryview) -> None:
        task = worker.finished()
        outcome = self._ledger.settle(task, payload)
        if outcome is not None:
            self.timer.observe(task.size, outcome.seconds)

    def _on_init_failed(self, worker: WorkerHandle, payload: memoryview) -> None:
        cause = rebuild_exception(loads(payload))
        error = InitError(
            f"init failed in worker {worker.slot} (pid {worker.pid}): "
            f"{type(cause).__name__}: {cause}. No job can run; fix init and create a new Pool.",
            worker_id=worker.slot,
        )
        error.__cause__ = cause
        worker.init_error = error  # counted when the worker exits, as it does next

    def _on_ready(self, worker: WorkerHandle) -> None:
        worker.ready = True
        self._init_failures = 0

    def _count_init_failure(self, worker: WorkerHandle, exitcode: int | None) -> None:
        """A worker ended before its init finished: try again, a few times only."""
        error = worker.init_error
        if error is None:
            how, _ = worker.describe_exit(exitcode)
            error = InitError(
                f"worker {worker.slot} (pid {worker.pid}) {how} while running init; "
                "no job can run. Fix init and create a new Pool.",
                worker_id=worker.slot,
            )
        self._init_failures += 1
        if self._init_failures >= INIT_ATTEMPTS:
            self._break(error)

    def _on_exit(self, worker: WorkerHandle) -> None:
        self._on_results(worker)  # what it wrote before it died still counts
        unsent_logs = self._log_spills[worker.slot].leftover(worker.log_generation)
        if unsent_logs is not None:  # it died before writing them: a crash
            self._logs.deliver(worker.slot, worker.pid, unsent_logs)
        for fd in (worker.results_fd, worker.sentinel):
            self._selector.unregister(fd)
        if worker.jobs_fd in self._blocked_writers:
            self._blocked_writers.discard(worker.jobs_fd)
            self._selector.unregister(worker.jobs_fd)
        exitcode = worker.reap()
        self._workers[worker.slot] = None
        if not worker.ready and not worker.retiring and self._broken is None:
            self._count_init_failure(worker, exitcode)
        never_started = not worker.ready or worker.recycling
        if worker.in_flight and never_started and self._broken is None:
            self._pending.extendleft(reversed(worker.take_all()))
        elif worker.in_flight:
            self._settle_orphans(worker, exitcode)
        if self._broken is None and not self._shared.stop_requested and self._has_work():
            self._spawn(worker.slot)
            self._restarts += 1

    def crash_safe_jobs(self) -> int | None:
        """How many jobs a chunk should hold, given how often workers die here."""
        return crash_safe_jobs(self._crashes, self._shared.completed)

    def _has_work(self) -> bool:
        return not self._closing or bool(self._pending) or self._jobs_in_flight() > 0

    def _settle_orphans(self, worker: WorkerHandle, exitcode: int | None) -> None:
        """Give every task the dead worker still held its outcome, or send it back to the queue."""
        tasks = worker.take_all()
        running = self._shared.running_slots
        job_id, running[worker.slot] = running[worker.slot], IDLE
        if self._broken is not None:
            for task in tasks:
                self._ledger.fail(task, self._broken)
            return
        if self._shared.stop_requested and exitcode == 0:
            for task in tasks:
                task.receiver.cancel("the pool was stopped before this job started")
            return
        self._crashes += 1
        culprit, position = locate(tasks, job_id)
        suspect = tasks[culprit]
        if suspect.tracked:
            before, after = suspect.part(0, position), suspect.part(position + 1, suspect.size)
            self._requeue([*tasks[:culprit], before, after, *tasks[culprit + 1 :]])
            job = suspect.first_job_id + position
            error = worker.crash_error(exitcode, job, suspect.timeout)
            self._ledger.finish(suspect.part(position, position + 1), [None], {0: error})
        else:
            # Which of its jobs killed the worker is unknown: they all run
            # again, tracked, and a job that crashes again is pinned down then.
            tasks[culprit] = suspect.part(0, suspect.size, tracked=True)
            self._requeue(tasks)

    def _requeue(self, tasks: list[Task]) -> None:
        """Put the jobs of a dead worker back at the front of the queue, in order.

        In crash-safe pieces: whole, a big chunk would likely die again and
        take with it the results of every job it had run.
        """
        piece = self.crash_safe_jobs() or 1
        self._pending.extendleft(
            part for task in reversed(tasks) for part in reversed(task.pieces(piece))
        )

    # ---- outcomes ------------------------------------------------------------------

    def _retry(self, tasks: list[Task]) -> None:
        self._pending.extendleft(reversed(tasks))

    def _break(self, error: PoolError) -> None:
        """The pool cannot run jobs (init fails): fail everything waiting, let workers exit."""
        with self._lock:
            self._broken = error
            self._closing = True
        while self._pending:
            self._ledger.fail(self._pending.popleft(), error)

    def _abandon(self, error: BaseException) -> None:
        """The master loop itself failed (a bug): leave nothing waiting and no process behind."""
        failure = PoolError(f"minipool's master thread failed ({error!r}); this is a bug")
        self._break(failure)
        self.kill_workers()
        for worker in self._workers:
            if worker is not None:
                for task in worker.in_flight:
                    self._ledger.fail(task, failure)
                worker.reap()

    # ---- workers -------------------------------------------------------------------

    def _spawn(self, slot: int) -> None:
        spill = self._log_spills[slot]
        spill.reset()
        config = WorkerConfig(
            worker_id=slot,
            init=self._init,
            shared=self._shared,
            log_spill=spill,
            log_levels=worker_levels(self._log_level),  # now: the caller may have changed them
            max_memory=self._max_worker_memory,
        )
        worker = WorkerHandle(self._ctx, config, self._master_fds())
        self._workers[slot] = worker
        self._selector.register(
            worker.results_fd, selectors.EVENT_READ, partial(self._on_results, worker)
        )
        self._selector.register(
            worker.sentinel, selectors.EVENT_READ, partial(self._on_exit, worker)
        )

    def _master_fds(self) -> tuple[int, ...]:
        fds = [self._wakeup_reader, self._wakeup_writer]
        if hasattr(self._selector, "fileno"):
            fds.append(self._selector.fileno())
        for worker in self._workers:
            if worker is not None:
                fds += worker.fds()
        return tuple(fds)

    def _close(self) -> None:
        with self._lock:
            os.close(self._wakeup_writer)
            self._wakeup_writer = -1
        os.close(self._wakeup_reader)
        self._selector.close()
