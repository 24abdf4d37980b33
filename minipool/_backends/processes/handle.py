"""The master's handle on one worker process: its pipes, its in-flight tasks, its exit.

Only the master thread touches a ``WorkerHandle``. The master's ends of both
pipes are non-blocking: the master loop must never wait on one worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import signal
from collections import deque
from collections.abc import Iterator
from typing import Any

from ..._errors import InitError, PoolError, TaskTimeout, WorkerCrashed
from ..._messages import STOP, FrameReader, Outbox
from ..._tasks import Task
from . import worker as _worker

_READ_SIZE = 1 << 20
# Linux lets an unprivileged process grow a pipe to 1 MiB (from 64 KiB): a
# large chunk or result then crosses in a few system calls instead of dozens.
_PIPE_SIZE = 1 << 20
_SIGNAL_HINTS = {
    signal.SIGKILL: " (often the out-of-memory killer)",
    signal.SIGSEGV: " (a crash in native code)",
    signal.SIGBUS: " (a crash in native code)",
    signal.SIGABRT: " (an abort in native code)",
}


class WorkerHandle:
    __slots__ = (
        "_connections",
        "in_flight",
        "init_error",
        "jobs_fd",
        "jobs_in_flight",
        "jobs_sent",
        "log_generation",
        "outbox",
        "pid",
        "process",
        "reader",
        "ready",
        "recycling",
        "results_fd",
        "retiring",
        "sentinel",
        "slot",
        "timed_out",
        "timed_tasks",
    )

    def __init__(self, ctx: Any, config: _worker.WorkerConfig, master_fds: tuple[int, ...]) -> None:
        jobs_reader, jobs_writer = ctx.Pipe(duplex=False)
        results_reader, results_writer = ctx.Pipe(duplex=False)
        _enlarge(jobs_writer.fileno())
        _enlarge(results_writer.fileno())
        inherited = (*master_fds, jobs_writer.fileno(), results_reader.fileno())
        if ctx.get_start_method() == "fork":
            config = dataclasses.replace(config, inherited_fds=inherited)
        slot = config.worker_id
        self.process = ctx.Process(
            target=_worker.main,
            args=(config, jobs_reader, results_writer),
            name=f"minipool-worker-{slot}",
        )
        with _sigint_blocked():
            self.process.start()
        self.pid: int = self.process.pid
        self.sentinel: int = self.process.sentinel
        jobs_reader.close()
        results_writer.close()
        self._connections = (jobs_writer, results_reader)
        self.slot = slot
        self.jobs_fd: int = jobs_writer.fileno()
        self.results_fd: int = results_reader.fileno()
        os.set_blocking(self.jobs_fd, False)
        os.set_blocking(self.results_fd, False)
        self.outbox = Outbox(self.jobs_fd)
        self.reader = FrameReader()
        self.in_flight: deque[Task] = deque()
        self.jobs_in_flight = 0
        self.timed_tasks = 0  # how many of the tasks it holds have a task_timeout
        self.jobs_sent = 0
        self.ready = False
        self.retiring = False
        self.timed_out: int | None = None  # the job it was killed for overrunning
        self.init_error: InitError | None = None  # what its init raised
        self.recycling = False  # it passed max_worker_memory and is leaving
        self.log_generation = 0  # of the last LOGS frame received (see _log_spill)

    def fds(self) -> tuple[int, ...]:
        return (self.jobs_fd, self.results_fd, self.sentinel)

    def send(self, task: Task) -> None:
        self.outbox.add_frame(task.header, task.payload)
        self.in_flight.append(task)
        self.jobs_in_flight += task.size
        self.jobs_sent += task.size
        self.timed_tasks += task.timeout is not None

    def finished(self) -> Task:
        """The task its next outcome is for: the oldest it holds (it runs them in order)."""
        task = self.in_flight.popleft()
        self.jobs_in_flight -= task.size
        self.timed_tasks -= task.timeout is not None
        return task

    def take_all(self) -> list[Task]:
        """Every task it still holds, oldest first; it holds none after."""
        tasks = list(self.in_flight)
        self.in_flight.clear()
        self.jobs_in_flight = self.timed_tasks = 0
        return tasks

    def shortest_timeout(self) -> float:
        return min(task.timeout for task in self.in_flight if task.timeout is not None)

    def retire(self) -> None:
        """Ask the worker to exit once it has run what it was sent."""
        if not self.retiring:
            self.retiring = True
            self.outbox.add(STOP)

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

    def reap(self) -> int | None:
        """Wait for the exited process (its sentinel fired) and release its pipes.

        The exit code is None when another thread collected the process first
        (multiprocessing's own exit handler, at interpreter exit, does).
        """
        self.process.join()
        for connection in self._connections:
            with contextlib.suppress(OSError):
                connection.close()
        exitcode: int | None = self.process.exitcode
        if exitcode is not None:
            self.process.close()
        return exitcode

    def crash_error(self, exitcode: int | None, job_id: int, timeout: float | None) -> PoolError:
        """The error for the job this worker was running when it died."""
        if job_id == self.timed_out and timeout is not None:
            return TaskTimeout(
                f"job {job_id} ran longer than task_timeout={timeout:g} s in worker "
                f"{self.slot} (pid {self.pid}); the worker was killed and replaced",
                job_id=job_id,
                seconds=timeout,
            )
        how, signal_name = self.describe_exit(exitcode)
        return WorkerCrashed(
            f"worker {self.slot} (pid {self.pid}) {how} while running job {job_id}; "
            "the pool replaced it and runs on",
            job_id=job_id,
            worker_id=self.slot,
            pid=self.pid,
            exitcode=exitcode,
            signal=signal_name,
        )

    def describe_exit(self, exitcode: int | None) -> tuple[str, str | None]:
        """How the process ended, in words, and the signal name if one killed it."""
        if exitcode is None:
            return "exited", None
        if exitcode < 0:
            try:
                number = signal.Signals(-exitcode)
            except ValueError:
                return f"was killed by signal {-exitcode}", str(-exitcode)
            return f"was killed by {number.name}{_SIGNAL_HINTS.get(number, '')}", number.name
        return f"exited with code {exitcode}", None


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
