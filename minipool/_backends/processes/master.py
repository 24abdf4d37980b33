"""The master: one thread in the caller's process that owns every worker process.

  caller threads             master thread (Master._run)           worker processes
  ──────────────             ───────────────────────────           ────────────────
  Pool.submit / Pool.map
    pickle a chunk (Task)
    Master.enqueue ─► _dispatch.pending ─┐
                   ─► _wakeup ───────────┤ one selector.select(next deadline) over:
                                         │  _wakeup.reader
                                         │  worker.results_fd ◄─ results pipe ◄─ worker._serve,
                                         │  worker.sentinel   ◄─ process exit    its lifeline
                                         │  worker.jobs_fd ──► jobs pipe ──►     (Outcome, READY,
                                         │   (only while a write is pending)     INIT_FAILED,
                                         │                                       RECYCLING, LOGS,
                                         │                                       UNMAPPED; reads
                                         │                                       Chunk, STOP,
                                         │                                       RELEASE, RETURN)
                                         └─ then _advance(): _dispatch.forget_revoked,
                                            _dispatch.dispatch, _dispatch.rebalance (take
                                            back, send again), _returns.send, and write
                                            to the workers in _watch.to_flush
  large buffers: Task.frame ──► segments (files in /dev/shm) ──► mapped by the worker;
                 worker results ──► segments ──► mapped by _ledger; a segment let go of
                 (UNMAPPED, or the caller's last view gone: _returns, RETURN) is written again
  Pool.share ──► _sharing.share ──► one shared segment; _returns.release ──► RELEASE
  Future.cancel() ──► worker.gate (claim or revoke, under its lock) ◄── claims each task
                 ──► _watch.caller_revoked, wakes ──► _dispatch.forget_revoked
  Future.running() ◄─ worker.gate.claimed ◄──────────────────────────── before it starts it
  Future / map chunk ◄── Receiver.deliver ◄── _ledger (retries, stats) ◄── Outcome frames
  log_sink / logging ◄── LogRouter.deliver ◄── LOGS frames, and after a crash
                                               _log_spills[slot] ◄──────── Sender.ship
  dead worker ──► blame.judge(held, gate) ──► culprit: WorkerCrashed / TaskTimeout (ends);
                                              the rest: _dispatch.requeue
  timeouts.expire(_watch.timed): gate.started + task_timeout ──► kill the overrunning worker
  Pool.stop() ──► _shared.stop (flag) ───────────────────────────► checked between jobs

Caller threads pickle their jobs themselves (so a bad argument fails at
``submit``), append the ``Task`` to the queue and write one byte to the
wakeup pipe. They never write to a worker; the one thing they touch is a
worker's gate, when they cancel a job that waits there (and they wake the
master, which stops counting that job as the worker's work).

The master thread is the only one that talks to workers. It sleeps in one
``select`` until a worker writes, a worker exits, a caller wakes it or a
blocked pipe becomes writable; then it delivers outcomes, settles the jobs of
dead workers, respawns them, dispatches queued tasks to the least loaded
workers, and takes back what busy workers have not started once a worker is
idle (``dispatch``). Its pipe ends are non-blocking and it buffers what a
pipe does not take, so one slow worker can never stall it.

Each worker has a jobs pipe and a results pipe of its own. Nothing is shared
between workers, so a worker killed mid-write (SIGKILL, the OOM killer, a
segfault) cannot leave a lock taken that wedges the others — the failure that
makes ``concurrent.futures.ProcessPoolExecutor`` break its whole pool. Each
worker claims a task at its gate before it starts it: a job is *pending*
(cancellable, and not ``running()``) until then, wherever it waits. When a
worker dies, ``blame`` decides from its gate which job was provably running;
that one gets ``WorkerCrashed`` (``TaskTimeout`` if the master killed it for
overrunning) or runs again under ``retries``, and every other job it held
without an outcome runs again. A worker whose jobs pipe reports a hang-up
knows the caller's process is gone, and exits.

Large buffers do not cross the pipes (see ``_segments``): the sender writes
them into a file of the pool's directory, ``segments``, and the frame names
it. The master removes a dead worker's files and the directory at shutdown,
and passes segments back to their writer once their reader let go of them.

What jobs log travels the same results pipe, in ``LOGS`` frames written just
before the outcomes they precede, and the master delivers them first: a
job's events reach the caller's logging before its future resolves. Until a
worker writes them they wait in shared memory (``_log_spills``), where the
master finds them if the worker dies first (see ``log_spill``).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import selectors
import threading
from functools import partial
from typing import TypeVar

from ... import _exits
from ..._context import IDLE
from ..._errors import PoolError
from ..._logging import LogRouter, worker_levels
from ..._messages import (
    EXITING,
    INIT_FAILED,
    LOGS,
    OUTCOME,
    READY,
    RECYCLING,
    UNMAPPED,
    Outcome,
    generation_of,
    split_paths,
)
from ..._options import PoolOptions
from ..._scheduling import LONGEST_CHUNK_SECONDS, TARGET_CHUNK_SECONDS
from ..._segments import SegmentDir
from ..._sharing import Shared, share
from ..._tasks import Task
from ..base import BackendBase
from . import timeouts
from .blame import judge
from .dispatch import RECHECK_SECONDS, Dispatcher
from .handle import Held, Watch, WorkerHandle
from .handover import InitCall
from .log_spill import LogSpill
from .returns import Returns
from .shared import Gate, SharedState
from .start_method import choose_start_method
from .wakeup import Wakeup
from .worker import WorkerConfig

T = TypeVar("T")
# init failures in a row (across workers) before the pool gives up with
# InitError: enough to ride out a database that refused one connection, few
# enough to fail within seconds instead of respawning forever.
INIT_ATTEMPTS = 3
_log = logging.getLogger("minipool")
STOPPED = "the pool was stopped before this job ran"
SHUT_DOWN = "the pool was shut down before this job ran"
STOPPED_UNSENT = "the pool was stopped before this job's outcome came back from its worker"


class Master(BackendBase):
    def __init__(self, options: PoolOptions) -> None:
        super().__init__(options, self._retry)
        assert options.workers is not None
        self.workers = options.workers
        self.max_tasks_per_worker = options.max_tasks_per_worker
        self.chunk_seconds = TARGET_CHUNK_SECONDS
        self.longest_chunk_seconds = LONGEST_CHUNK_SECONDS
        self._options = options
        self._init = None if options.init is None else InitCall(options.init, options.init_args)
        self._ctx = multiprocessing.get_context(
            choose_start_method(options.start_method, self._init)
        )
        self._shared = SharedState()
        self.segments = SegmentDir.create()
        self._dispatch = Dispatcher(options.max_tasks_per_worker, lambda: self._completed)
        self._logs = LogRouter(options.log_sink)
        self._log_spills = [LogSpill() for _ in range(self.workers)]
        self._cancel_pending = False
        self._init_failures = 0  # in a row, across workers; reset by a successful init
        self._selector = selectors.DefaultSelector()
        self._wakeup = Wakeup(self._lock)
        self._returns = Returns(self._lock, self._wakeup.wake, self.segments)
        self._selector.register(self._wakeup.reader, selectors.EVENT_READ, self._wakeup.drain)
        # Every fd of this process that belongs to the pool, for a forked child
        # to close (see disown). Added before each is shared, removed before it closes.
        self._owned_fds: set[int] = {*self._wakeup.fds(), *_selector_fds(self._selector)}
        self._blocked_writers: set[int] = set()
        self._watch = Watch(self._lock, self._wakeup.wake)
        self._workers: list[WorkerHandle | None] = [None] * self.workers
        self._thread = threading.Thread(target=self._run, name="minipool-master", daemon=True)
        _exits.register(self)  # before the first worker is forked: it must disown the pool
        try:
            for slot in range(self.workers):
                self._spawn(slot)
            self._thread.start()
        except BaseException:  # no master thread will look after the workers started
            self._abandon_start()
            raise

    # ---- called from caller threads ------------------------------------------------

    def enqueue(self, tasks: list[Task]) -> None:
        with self._lock:
            self._admit(tasks)
            self._dispatch.pending.extend(tasks)
            self._wakeup.wake()

    def shutdown(self, *, wait: bool, cancel_pending: bool) -> None:
        if self.disowned:
            return  # a forked child: the workers are its parent's (see disown)
        with self._lock:
            self._closing = True
            self._cancel_pending = self._cancel_pending or cancel_pending
            self._wakeup.wake()
        if wait and threading.current_thread() is not self._thread:
            self._done.wait()

    def share(self, value: T) -> Shared[T]:
        return share(value, self.segments, self._returns.release)

    def stop(self) -> None:
        if self.disowned:
            return  # the stop flag is shared with the parent's workers
        self._shared.request_stop()
        self.shutdown(wait=False, cancel_pending=True)

    def disown(self) -> None:
        """In a forked child: close its copies of the master's pipe ends (the workers see the
        master gone only once no process holds their jobs pipe), and forget the workers,
        which are not this process's children."""
        super().disown()
        for fd in list(self._owned_fds):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._owned_fds.clear()
        # multiprocessing would try to join them at this process's exit, and complain.
        for worker in list(self._workers):
            if worker is not None:
                multiprocessing.process._children.discard(worker.process)  # type: ignore[attr-defined]

    def kill_workers(self) -> None:
        """Last resort (interpreter exit, a master failure): SIGKILL every worker."""
        for worker in list(self._workers):
            # ValueError: the master thread reaped that worker meanwhile (it exited
            # after stop()) and closed its process object: nothing is left to kill.
            with contextlib.suppress(ValueError):
                if worker is not None and worker.process.exitcode is None:
                    worker.kill_group()

    @property
    def stop_requested(self) -> bool:
        return self._shared.stop_requested

    def crash_safe_jobs(self) -> int | None:
        return self._dispatch.crash_safe_jobs()

    def _running_jobs(self) -> int:
        live = [worker for worker in list(self._workers) if worker is not None]
        return sum(worker.gate.running != IDLE for worker in live)

    def _workers_alive(self) -> int:
        return sum(worker is not None for worker in list(self._workers))

    # ---- the master thread ---------------------------------------------------------

    def _run(self) -> None:
        try:
            while any(worker is not None for worker in self._workers):
                self._step()
        except BaseException as error:
            self._abandon(error)
            raise
        finally:
            self._close()
            # Last, and with no worker handle left in a local: a handle's gate
            # unregisters its semaphore as it is freed, and must do so before
            # the interpreter can exit under this thread.
            self._done.set()

    def _step(self) -> None:
        timed = self._watch.timed
        timeout = timeouts.seconds_left(timed)
        if self._dispatch.recheck:
            timeout = RECHECK_SECONDS if timeout is None else min(timeout, RECHECK_SECONDS)
        for key, _ in self._selector.select(timeout):
            key.data()
        for late in timeouts.expire(timed):
            _log.warning("minipool: %s", late)
        if timed:
            self._watch.timed = {worker for worker in timed if self._watched(worker)}
        self._advance()

    def _watched(self, worker: WorkerHandle) -> bool:
        return self._workers[worker.slot] is worker and worker.has_deadline

    def _advance(self) -> None:
        """What to do after each round of events: cancel, dispatch, rebalance, retire, write."""
        self._dispatch.forget_revoked(self._watch.take_revoked())
        if self._shared.stop_requested:
            self._dispatch.cancel_unstarted(self._workers, STOPPED)
            self._retire_all()
        elif self._broken is not None:
            self._retire_all()
        else:
            if self._cancel_pending:
                self._dispatch.cancel_unstarted(self._workers, SHUT_DOWN)
            self._dispatch.dispatch(self._workers)
            self._dispatch.rebalance(self._workers)
            if self._closing and not self._dispatch.work_left(self._workers):
                self._retire_all()
        self._returns.send(self._workers, self._watch.to_flush)
        to_flush, self._watch.to_flush = self._watch.to_flush, set()
        for worker in to_flush:
            self._flush(worker)

    def _retire_all(self) -> None:
        for worker in self._workers:
            if worker is not None:
                worker.retire()

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

    def _on_results(self, worker: WorkerHandle) -> None:
        if self._workers[worker.slot] is not worker:
            return  # an event from before the worker's exit was handled
        for kind, payload in worker.read():
            if kind == OUTCOME:
                self._on_outcome(worker, payload)
            elif kind == READY:
                worker.ready()
                self._dispatch.changed = True
                self._init_failures = 0
            elif kind == INIT_FAILED:
                worker.init_failed(payload)  # counted when it exits, as it does next
            elif kind == LOGS:
                worker.log_generation = generation_of(payload)
                self._logs.deliver(worker.slot, worker.pid, payload)
            elif kind == RECYCLING:
                worker.leaving()
            elif kind == EXITING:
                worker.exiting()
            elif kind == UNMAPPED and self.segments is not None:
                self.segments.released(split_paths(payload))

    def _on_outcome(self, worker: WorkerHandle, payload: memoryview) -> None:
        outcome = Outcome.decode(payload)
        held, skipped = worker.settle(outcome)
        if not worker.held:
            self._dispatch.changed = True  # an idle worker: something to rebalance for?
        for entry in skipped:  # revoked by their callers, who cancelled them
            entry.task.receiver.unplace(entry)
        task = held.task
        if outcome.size:
            self._ledger.settle(task, outcome, outcome.nbytes)
            self._dispatch.timer.observe(outcome.size, outcome.seconds)
        if outcome.final:
            # Last: until its outcome is in, a job that ran must not look
            # pending (a cancel() would succeed); a job to retry waits unplaced.
            task.receiver.unplace(held)
        if outcome.final and held.done < task.size:  # stop() ended its chunk early
            rest = held.rest()
            rest.receiver.cancel(rest.offset, rest.size, STOPPED)

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
        if self.segments is not None:  # its files: results (the caller's mappings stay)
            self.segments.remove_written_by(worker.pid)
        self._workers[worker.slot] = None
        self._watch.timed.discard(worker)
        self._watch.to_flush.discard(worker)
        self._dispatch.changed = True
        if worker.died_in_init and self._broken is None:
            # It ended before its init finished: try again, a few times only.
            self._init_failures += 1
            if self._init_failures >= INIT_ATTEMPTS:
                self._break(worker.init_failure(exitcode))
        self._settle_held(worker, exitcode)
        has_work = not self._closing or self._dispatch.work_left(self._workers)
        if self._broken is None and not self._shared.stop_requested and has_work:
            self._respawn(worker.slot)

    def _settle_held(self, worker: WorkerHandle, exitcode: int | None) -> None:
        """Give each job the dead worker held its outcome, or send it back to the queue.

        The jobs leave their placements last: until then a cancel() asks the
        dead worker's gate, which refuses the job it was running (to blame
        it) and takes back the others; without a placement, the culprit
        would look pending, and be cancelled instead of blamed.
        """
        held = worker.take_all()
        self._judge_held(worker, held, exitcode)
        for entry in held:
            entry.task.receiver.unplace(entry)

    def _judge_held(self, worker: WorkerHandle, held: list[Held], exitcode: int | None) -> None:
        if not held:
            return
        if self._broken is not None:
            for entry in held:
                self._ledger.fail(entry.rest(), self._broken)
            return
        gate = worker.gate
        if any(entry.number <= gate.claimed for entry in held):
            self._dispatch.crashes += 1  # work in hand was lost: chunks shrink (see dispatch)
        verdict = judge(held, gate.claimed, gate.running, worker.killed_for)
        culprit = verdict.culprit
        if culprit is not None:
            error = worker.crash_error(exitcode, culprit.first_job_id, culprit.timeout)
            self._ledger.finish(culprit, [None], {0: error})
        if self._shared.stop_requested:
            for task in verdict.rerun:
                task.receiver.cancel(task.offset, task.size, STOPPED_UNSENT)
        else:
            self._dispatch.requeue(verdict.rerun)

    # ---- outcomes ------------------------------------------------------------------

    def _retry(self, tasks: list[Task]) -> None:
        if self._shared.stop_requested:
            for task in tasks:
                task.receiver.cancel(task.offset, task.size, STOPPED)
        else:
            self._dispatch.retry(tasks)

    def _break(self, error: PoolError) -> None:
        """The pool cannot run jobs (init fails): fail everything waiting, let workers exit."""
        with self._lock:
            self._broken = error
            self._closing = True
        pending = self._dispatch.pending
        while pending:
            self._ledger.fail(pending.popleft(), error)

    def _abandon(self, error: BaseException) -> None:
        """The master loop itself failed (a bug): leave nothing waiting and no process behind."""
        failure = PoolError(f"minipool's master thread failed ({error!r}); this is a bug")
        self._break(failure)
        self.kill_workers()
        for worker in self._workers:
            if worker is not None:
                for held in worker.take_all():
                    self._ledger.fail(held.rest(), failure)
                worker.reap()

    def _abandon_start(self) -> None:
        """``Pool()`` failed half-way: kill and reap the workers already started."""
        self.kill_workers()
        for worker in self._workers:
            if worker is not None:
                worker.reap()
        self._close()
        self._done.set()
        _exits.unregister(self)

    # ---- workers -------------------------------------------------------------------

    def _spawn(self, slot: int) -> None:
        spill = self._log_spills[slot]
        spill.reset()
        options = self._options
        config = WorkerConfig(
            worker_id=slot,
            init=self._init,
            shared=self._shared,
            gate=Gate(self._ctx),
            log_spill=spill,
            log_levels=worker_levels(options.log_level),  # now: the caller may have changed them
            max_memory=options.max_worker_memory,
            segments=None if self.segments is None else self.segments.path,
        )
        worker = WorkerHandle(self._ctx, config, self._owned_fds, self._watch)
        self._workers[slot] = worker
        self._selector.register(
            worker.results_fd, selectors.EVENT_READ, partial(self._on_results, worker)
        )
        self._selector.register(
            worker.sentinel, selectors.EVENT_READ, partial(self._on_exit, worker)
        )

    def _respawn(self, slot: int) -> None:
        try:
            self._spawn(slot)
        except Exception as error:  # out of processes or fds; init_args that stopped pickling
            self._break(
                PoolError(
                    f"could not start a worker in place of worker {slot}: "
                    f"{type(error).__name__}: {error}. No job can run; create a new Pool."
                )
            )
        else:
            self._restarts += 1

    def _close(self) -> None:
        self._owned_fds.difference_update([*self._wakeup.fds(), *_selector_fds(self._selector)])
        self._wakeup.close()
        self._selector.close()
        if self.segments is not None:  # values already delivered keep their mappings
            self.segments.remove()


def _selector_fds(selector: selectors.BaseSelector) -> list[int]:
    """The selector's own fd (epoll's, kqueue's), if it has one."""
    fileno = getattr(selector, "fileno", None)
    return [fileno()] if fileno is not None else []
