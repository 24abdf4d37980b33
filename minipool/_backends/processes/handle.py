"""The master's handle on one worker process: its pipes, its gate, the tasks it holds, its exit.

Only the master thread touches a ``WorkerHandle``. The master's ends of both
pipes are non-blocking: the master loop must never wait on one worker.

A worker's life, as the master sees it (``Life``)::

    STARTING ──READY──► SERVING ──retire() / RECYCLING──► RETIRING ──exit──► (gone)
        │                  │
        └──retire()────────┼──────────────────────────────► RETIRING
                           └──kill_for(job): task_timeout ► KILLED ─────exit──► (gone)

Only a STARTING or SERVING worker is sent tasks; a worker that ends before it
says READY died in its init, unless the master killed it (see ``died_in_init``).

A worker must be gone by its ``exit_deadline`` once it has one: once it says
it only exits (``EXITING``, after its teardown), or once it is retired while
still in its init (which may never end). Past it, the master kills it
(``kill_late``). Every kill takes the worker's process group, which the
processes its jobs start belong to, and so does its exit: they die with it,
unless they left the group (``setsid()``, ``start_new_session=True``).
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator
from time import monotonic
from typing import Any

from ..._context import CLAIMED_CELL, IDLE
from ..._errors import InitError, PoolError
from ..._messages import STOP, FrameReader, Outbox, Outcome
from ..._tasks import Task
from . import ends
from . import worker as _worker
from .shared import RING

_READ_SIZE = 1 << 20
# Linux lets an unprivileged process grow a pipe to 1 MiB (from 64 KiB): a
# large chunk or result then crosses in a few system calls instead of dozens.
_PIPE_SIZE = 1 << 20
# How long a worker may take to exit once it only exits, or to leave an init
# that keeps it from reading STOP: long enough for a slow init to finish and
# for multiprocessing to flush what a job put in its queues; short enough that
# shutdown() does not wait on a thread or a process a job left running.
EXIT_GRACE_SECONDS = 5.0


class Life(enum.Enum):
    STARTING = "starting"  # its init runs: tasks sent now wait in its pipe
    SERVING = "serving"
    RETIRING = "retiring"  # told to exit (or leaving on its own) once it ran what it claimed
    KILLED = "killed"  # killed by the master (task_timeout); its exit is on its way


class Held:
    """A task sent to a worker, as task number ``number`` at its gate, and how many of
    its jobs have delivered outcomes already (a chunk may send them in parts).

    It is also where the task waits, for its caller (see ``_tasks.Placement``).
    """

    __slots__ = ("done", "number", "task", "worker")

    def __init__(self, task: Task, number: int, worker: WorkerHandle) -> None:
        self.task = task
        self.number = number
        self.worker = worker
        self.done = 0

    def started(self) -> bool:
        return self.worker.gate.has_started(self.number)

    def revoke(self) -> bool:
        """Take the task back; False if the worker has started it (or cannot be asked)."""
        return self.worker.revoke_for_caller(self.number)

    def rest(self) -> Task:
        """The jobs still without an outcome, as a task."""
        task = self.task
        return task if self.done == 0 else task.part(self.done, task.size)


class Watch:
    """The workers the master must look at after a round of events, instead of every one:
    at 32 workers, those scans of every worker were a fifth of the master's CPU.

    A handle adds itself; the master takes the sets and drops handles that are gone.
    """

    __slots__ = ("_lock", "_revoked", "_wake", "timed", "to_flush")

    def __init__(self, lock: threading.Lock, wake: Callable[[], None]) -> None:
        self.to_flush: set[WorkerHandle] = set()  # frames wait in its outbox
        self.timed: set[WorkerHandle] = set()  # it holds timed tasks, or must exit by a deadline
        # Callers revoked tasks it holds (cancel(), a dropped map): written by caller
        # threads, under the master's ``lock``, and each wakes the master (``wake``).
        self._revoked: set[WorkerHandle] = set()
        self._lock = lock
        self._wake = wake

    def caller_revoked(self, worker: WorkerHandle) -> None:
        with self._lock:
            self._revoked.add(worker)
            self._wake()

    def take_revoked(self) -> set[WorkerHandle]:
        """The workers callers revoked tasks at since the last call (from the master thread)."""
        if not self._revoked:
            return self._revoked
        with self._lock:
            revoked, self._revoked = self._revoked, set()
        return revoked


class WorkerHandle:
    __slots__ = (
        "_claims",
        "_connections",
        "_late_for",
        "_owned_fds",
        "_was_ready",
        "_watch",
        "accepting",
        "exit_deadline",
        "gate",
        "held",
        "init_error",
        "jobs_fd",
        "jobs_in_flight",
        "jobs_sent",
        "killed_for",
        "life",
        "log_generation",
        "outbox",
        "pid",
        "process",
        "reader",
        "results_fd",
        "sentinel",
        "slot",
        "stalled",
        "tasks_sent",
        "timed_tasks",
    )

    def __init__(
        self, ctx: Any, config: _worker.WorkerConfig, owned_fds: set[int], watch: Watch
    ) -> None:
        """Start the worker; its pipe ends on this side join ``owned_fds`` until ``reap``."""
        self._watch = watch
        jobs_reader, jobs_writer = ctx.Pipe(duplex=False)
        results_reader, results_writer = ctx.Pipe(duplex=False)
        _enlarge(jobs_writer.fileno())
        _enlarge(results_writer.fileno())
        self._owned_fds = owned_fds
        owned_fds.update((jobs_writer.fileno(), results_reader.fileno()))  # before the fork
        slot = config.worker_id
        self.process = ctx.Process(
            target=_worker.main,
            args=(config, jobs_reader, results_writer),
            name=f"minipool-worker-{slot}",
        )
        try:
            with _sigint_blocked():
                self.process.start()
        except BaseException:  # init_args that do not pickle, no fds left, ...
            owned_fds.difference_update((jobs_writer.fileno(), results_reader.fileno()))
            for end in (jobs_reader, jobs_writer, results_reader, results_writer):
                end.close()
            raise
        self.pid: int = self.process.pid
        self.sentinel: int = self.process.sentinel
        jobs_reader.close()
        results_writer.close()
        self._connections = (jobs_writer, results_reader)
        self.slot = slot
        self.gate = config.gate
        self.jobs_fd: int = jobs_writer.fileno()
        self.results_fd: int = results_reader.fileno()
        os.set_blocking(self.jobs_fd, False)
        os.set_blocking(self.results_fd, False)
        self.outbox = Outbox(self.jobs_fd)
        self.reader = FrameReader()
        self.life = Life.STARTING
        self.accepting = True  # STARTING or SERVING: is sent tasks (read once per dispatch)
        self._claims = self.gate.jobs
        self.held: deque[Held] = deque()  # in the order sent, which is the order it runs them
        self.jobs_in_flight = 0  # jobs held without an outcome
        self.timed_tasks = 0  # how many of the tasks it holds have a task_timeout
        self.tasks_sent = 0  # the number of the last task sent (see shared.Gate)
        self.jobs_sent = 0
        # Its unstarted tasks were taken back because it ran one long, or was
        # still in its init: it gets no more until that one ends, or its init.
        self.stalled = False
        self.killed_for: int | None = None  # the job it was killed for overrunning
        self.exit_deadline: float | None = None  # monotonic(); see the module's docstring
        self._late_for = ""  # what it would be killed for missing exit_deadline
        self.init_error: InitError | None = None  # what its init raised
        self._was_ready = False  # its init ended well (a READY frame)
        self.log_generation = 0  # of the last LOGS frame received (see log_spill)

    def fds(self) -> tuple[int, ...]:
        return (self.jobs_fd, self.results_fd, self.sentinel)

    @property
    def takes_tasks(self) -> bool:
        return self.accepting and not self.stalled and self.has_room

    @property
    def busy_elsewhere(self) -> bool:
        """Whether the tasks it holds wait behind something: its init, or a job it runs."""
        return self.life is Life.STARTING or self.gate.running != IDLE

    @property
    def holds_unstarted(self) -> bool:
        """Whether a task it holds waits for it to start it."""
        return bool(self.held) and self.held[-1].number > self.gate.claimed

    @property
    def has_room(self) -> bool:
        """Whether another task may be sent: no more than ``RING`` may wait to be read,
        counting those taken back (a revoked task's frame is still in the pipe, and its
        number must stay in the gate's ring until the worker skips it)."""
        return self.tasks_sent - self._claims[CLAIMED_CELL] < RING

    # ---- tasks ---------------------------------------------------------------------

    def hold(self, task: Task) -> Held:
        """The record ``task`` will have once sent (``send``): where it is to wait."""
        return Held(task, self.tasks_sent + 1, self)

    def send(self, held: Held) -> None:
        task = held.task
        header, payload = task.frame()
        task.mark_sent()
        self.outbox.add_frame(header, payload)
        self._watch.to_flush.add(self)
        self.tasks_sent = held.number
        self.held.append(held)
        self.jobs_in_flight += task.size
        self.jobs_sent += task.size
        if task.timeout is not None:
            self.timed_tasks += 1
            self._watch.timed.add(self)

    def settle(self, outcome: Outcome) -> tuple[Held, list[Held]]:
        """The task ``outcome`` is for, and those before it the worker skipped (taken back
        by their callers); a final outcome's task is no longer held."""
        skipped = []
        while self.held[0].number < outcome.task:
            skipped.append(self.held.popleft())
            self._forget(skipped[-1])
        held = self.held[0]
        held.done += outcome.size
        self.jobs_in_flight -= outcome.size
        if outcome.final:
            self._forget(self.held.popleft())  # jobs after its last outcome never started
            self.stalled = False
        return held, skipped

    def take_back(self) -> list[Held] | None:
        """Revoke every task the worker has not started; None if its gate does not answer."""
        claimed = self.gate.claimed
        if not self.held or self.held[-1].number <= claimed:
            return []  # the common case, and a cheap one: nothing waits
        waiting = [held.number for held in self.held if held.number > claimed]
        revoked = self.gate.revoke(waiting)
        if revoked is None:
            return None
        return self._let_go(set(revoked))

    def revoke_for_caller(self, number: int) -> bool:
        """A caller's thread takes back task number ``number`` (it cancels it), unless the
        worker started it; the master then forgets it (see ``drop_revoked``)."""
        if not self.gate.revoke([number]):
            return False
        self._watch.caller_revoked(self)
        return True

    def drop_revoked(self) -> list[Held]:
        """Forget the tasks revoked at its gate (cancelled by their callers): it skips them
        without a word, so they would count as its work until its next outcome, which may
        never come if nothing else is sent to it."""
        gate = self.gate
        return self._let_go({held.number for held in self.held if gate.was_revoked(held.number)})

    def _let_go(self, numbers: set[int]) -> list[Held]:
        """Stop holding the tasks numbered ``numbers`` (it will never run them); those it held."""
        if not numbers:
            return []
        gone = [held for held in self.held if held.number in numbers]
        self.held = deque(held for held in self.held if held.number not in numbers)
        for held in gone:
            self._forget(held)
        return gone

    def take_all(self) -> list[Held]:
        """Every task it still holds, oldest first (it has exited); it holds none after."""
        held = list(self.held)
        self.held.clear()
        self.jobs_in_flight = self.timed_tasks = 0
        return held

    def _forget(self, held: Held) -> None:
        """``held`` is no longer held: its jobs without an outcome leave the counts."""
        self.timed_tasks -= held.task.timeout is not None
        self.jobs_in_flight -= held.task.size - held.done

    def held_number(self, number: int) -> Held | None:
        for held in self.held:
            if held.number == number:
                return held
        return None

    @property
    def has_deadline(self) -> bool:
        """Whether it holds a timed task or must exit by a deadline (see ``timeouts``)."""
        return bool(self.timed_tasks) or self.exit_deadline is not None

    def shortest_timeout(self) -> float:
        return min(held.task.timeout for held in self.held if held.task.timeout is not None)

    # ---- its life ------------------------------------------------------------------

    def ready(self) -> None:
        self._was_ready = True
        self.stalled = False
        if self.life is Life.STARTING:
            self.life = Life.SERVING
        elif self.life is Life.RETIRING:
            self.exit_deadline = None  # out of init: it reads its STOP and tears down

    def retire(self) -> None:
        """Ask the worker to exit once it has run what it claims (if it is in its init,
        by ``EXIT_GRACE_SECONDS`` from now)."""
        if self.accepting:
            if self.life is Life.STARTING:
                self._set_exit_deadline("to end its init once the pool was done with it")
            self.life, self.accepting = Life.RETIRING, False
            self.outbox.add(STOP)
            self._watch.to_flush.add(self)

    def exiting(self) -> None:
        """It tore down and only exits now (an ``EXITING`` frame)."""
        if self.life is not Life.KILLED:
            self._set_exit_deadline(
                "to exit after its teardown (a thread or a process its jobs left running?)"
            )

    def _set_exit_deadline(self, late_for: str) -> None:
        self.exit_deadline = monotonic() + EXIT_GRACE_SECONDS
        self._watch.timed.add(self)
        self._late_for = late_for

    def leaving(self) -> None:
        """It said it exits (past ``max_worker_memory``): the tasks it did not claim never ran."""
        if self.accepting:
            self.life, self.accepting = Life.RETIRING, False

    def init_failed(self, payload: memoryview) -> None:
        """Its init raised (an ``INIT_FAILED`` frame): the error its exit will count."""
        self.init_error = ends.init_error(self.slot, self.pid, payload)

    @property
    def died_in_init(self) -> bool:
        """Whether it ended (as it now has) in its init: its init raised, or it never said
        READY and the master did not kill it. Not whether it was STARTING: a worker can be
        retired before its init ends (see ``retire``)."""
        return self.init_error is not None or (not self._was_ready and self.life is not Life.KILLED)

    def init_failure(self, exitcode: int | None) -> InitError:
        """Why it ended before its init finished."""
        return self.init_error or ends.init_failure(self.slot, self.pid, exitcode)

    def kill_for(self, job: int) -> None:
        """``job`` overran its ``task_timeout``: SIGKILL the process (its exit settles the job)."""
        self.killed_for = job
        self.kill()

    def kill_late(self) -> str:
        """Past its ``exit_deadline``: SIGKILL it; what it was late for, in words."""
        late_for = self._late_for
        self.kill()
        return (
            f"worker {self.slot} (pid {self.pid}) took more than {EXIT_GRACE_SECONDS:g} s "
            f"{late_for}; it was killed"
        )

    def kill(self) -> None:
        """SIGKILL the worker and the processes in its group (its exit is on its way)."""
        self.life, self.accepting = Life.KILLED, False
        self.exit_deadline = None
        self.kill_group()

    def kill_group(self) -> None:
        """SIGKILL the worker and its group, and nothing else (any thread may call it)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):  # not its group's leader yet
            self.process.kill()

    def flush(self) -> bool:
        """Write what the pipe takes; True when nothing is left. A dead worker takes nothing."""
        try:
            return self.outbox.flush()
        except BrokenPipeError:
            return True  # its exit is handled through the sentinel

    def read(self) -> list[tuple[int, memoryview]]:
        """Every complete frame the worker has written so far."""
        frames: list[tuple[int, memoryview]] = []
        while True:
            try:
                data = os.read(self.results_fd, _READ_SIZE)
            except BlockingIOError:
                return frames
            if not data:
                return frames
            frames += self.reader.feed(data)
            # A pipe gives all it holds, up to what is asked: a short read
            # emptied it. What comes later wakes select() again, and asking
            # once more now would cost a failed read; but the rest of a large
            # frame comes as fast as the worker writes it, and is read on
            # without a round of the master loop per pipe-full.
            if len(data) < _READ_SIZE and not self.reader.mid_frame:
                return frames

    def reap(self) -> int | None:
        """Wait for the exited process (its sentinel fired) and release its pipes.

        The exit code is None when another thread collected the process first
        (multiprocessing's own exit handler, at interpreter exit, does).
        """
        # What its jobs started and left running dies with it. Before the join: until
        # the exited worker is collected its pid, the group's id, cannot be reused,
        # and after it the group might be another process's.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.join()
        self._owned_fds.difference_update((self.jobs_fd, self.results_fd))
        for connection in self._connections:
            with contextlib.suppress(OSError):
                connection.close()
        exitcode: int | None = self.process.exitcode
        if exitcode is not None:
            self.process.close()
        return exitcode

    def crash_error(self, exitcode: int | None, job_id: int, timeout: float | None) -> PoolError:
        """The error for the job this worker was running when it died."""
        if job_id == self.killed_for and timeout is not None:
            return ends.timeout_error(self.slot, self.pid, job_id, timeout)
        return ends.crash_error(self.slot, self.pid, exitcode, job_id)


def _enlarge(fd: int) -> None:
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        with contextlib.suppress(OSError):  # above the system's pipe-max-size
            fcntl.fcntl(fd, set_size, _PIPE_SIZE)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Start a worker with SIGINT blocked, so that Ctrl-C cannot reach it before it ignores it.

    A new process inherits the signal mask (through fork, and across exec for
    spawn), and so does a forkserver started here, and every worker it forks.
    The worker unblocks SIGINT once it has set it to be ignored; one that came
    in between is then dropped. Without this, a worker still importing modules
    when Ctrl-C comes prints a traceback of its own.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
