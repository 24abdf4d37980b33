"""The worker process: init, the job loop, teardown, and the lifeline thread.

A worker reads chunk frames from its own jobs pipe and writes outcome frames
to its own results pipe (through its ``Sender``). Both pipes belong to this
worker alone, so no lock is ever shared with another process; the one lock
it shares, its ``Gate``'s, it shares with the master only.

The tasks in the pipe are numbered in the order they come, as the master
numbered them when it sent them. Before it starts one, the worker claims it at
its gate; a task the master took back meanwhile (to run it elsewhere, or
because its caller cancelled it) is skipped unread. A claimed task runs to its
end, except that ``stop()`` ends a chunk between two of its jobs.

The lifeline thread ends the process when the master's is gone, and sends
outcomes and log events that have waited too long (see ``sender``).
"""

from __future__ import annotations

import os
import resource
import select
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Any

from ... import _context, _exits
from ..._context import CHUNK_WIDE
from ..._execute import execute, start
from ..._log_shipping import install as install_logging
from ..._logging import LogLevels
from ..._messages import (
    CHUNK,
    CHUNK_PREFIX,
    EXITING,
    INIT_FAILED,
    READY,
    RECYCLING,
    RELEASE,
    RETURN,
    TIMED,
    FrameReader,
    split_paths,
)
from ..._pickling import PROTOCOL, FunctionCache, dumps, error_info
from ..._segments import SegmentDir
from ..._sharing import forget
from .handover import InitCall
from .log_spill import LogSpill
from .sender import HOLD_SECONDS, Sender
from .shared import Gate, SharedState

# Large enough to take a whole batch of small chunks in one system call.
READ_SIZE = 1 << 20
# When the caller's process dies (SIGKILL), an idle worker sees EOF and leaves
# through its teardown at once; one busy in a job gets this long to finish
# before the lifeline thread ends the process.
MASTER_GONE_GRACE_SECONDS = 2.0
EXIT_MASTER_GONE = 75


@dataclass(frozen=True)
class WorkerConfig:
    worker_id: int
    init: InitCall | None
    shared: SharedState
    gate: Gate
    log_spill: LogSpill
    log_levels: LogLevels
    # max_worker_memory: exit, between chunks, once resident memory passes it.
    max_memory: int | None = None
    # The pool's directory of shared memory segments (see _segments), if it has one.
    segments: str | None = None


def main(config: WorkerConfig, jobs: Any, results: Any) -> None:
    """Entry point of a worker process; ``jobs`` and ``results`` are its pipe ends."""
    # A process group of its own, which the processes its jobs start join: the
    # master kills the group, so that they die with this worker (see handle).
    os.setpgid(0, 0)
    # Ctrl-C is the caller's to handle. (This process started with SIGINT
    # blocked: see handle._sigint_blocked.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    context = _context.WorkerContext(config.worker_id, config.shared, config.gate)
    if config.segments is not None:
        context.segments = SegmentDir(config.segments)
    _context.install(context)
    sender = Sender(config.log_spill, results.fileno(), context.job_id, config.segments)
    os.register_at_fork(after_in_child=partial(_forked_by_a_job, context, sender))
    _start_lifeline(jobs.fileno(), sender, context.segments)
    context.logger = install_logging(config.log_levels, sender.ship)
    try:
        _live(config, jobs.fileno(), sender, context)
    finally:
        # Pools a job or init left open: stopped, not joined forever at exit.
        _exits.stop_live_pools()
        # From here the process only exits; the master kills it if it lingers
        # (a thread or a child process a job left running that exit waits for).
        sender.add(EXITING)
        sender.flush()


def _live(
    config: WorkerConfig, jobs_fd: int, sender: Sender, context: _context.WorkerContext
) -> None:
    """Init, the jobs, teardown."""
    try:
        init, init_args = config.init.load() if config.init is not None else (None, ())
        context.state, teardown = start(init, init_args)
    except BaseException as error:
        sender.add(INIT_FAILED, dumps(error_info(error), protocol=PROTOCOL))
        sender.flush()
        return
    # At once, not with the first outcomes: a worker killed by its first job
    # must not look to the master as one that died in init.
    sender.add(READY)
    sender.flush()
    try:
        _serve(jobs_fd, sender, context, config.gate, config.max_memory)
    finally:
        try:
            teardown()
        finally:
            sender.flush()  # what the teardown logged


def _forked_by_a_job(context: _context.WorkerContext, sender: Sender) -> None:
    """In a process a job forked: it is not the worker, and must never act as one.

    Its log events go to its stderr (the results pipe and the log spill are
    the worker's), an untracked chunk's ``map()`` runs no more jobs in it,
    and the job's function returning in it ends it (see
    ``_execute.leave_forked_child``).
    """
    context.forked = True
    sender.disown()
    if context.untracked is not None:
        deque(context.untracked[1], maxlen=0)  # the copy of the chunk's iterator: used up


def _start_lifeline(jobs_fd: int, sender: Sender, segments: SegmentDir | None) -> None:
    """End this process soon after the master's process dies, even in the middle of a job.

    Only the master holds the write end of the jobs pipe, so the read end
    reports POLLHUP exactly when the master's process is gone. A thread waits
    for that with an empty event mask, which never consumes the jobs; it also
    wakes when the sender arms it, and on every tick the sender asks for.
    A master that is gone cannot remove the pool's shared memory: every
    worker removes it, and makes no more (the last to do so leaves nothing).
    """
    poller = select.poll()
    poller.register(jobs_fd, 0)
    poller.register(sender.wake_reader, select.POLLIN)

    # POLLNVAL too: a worker whose jobs pipe is gone (a job closed it) cannot
    # serve, and poll() would otherwise return at once, for ever.
    gone = select.POLLHUP | select.POLLERR | select.POLLNVAL

    def watch() -> None:
        timeout = 0.0
        while True:
            events = dict(poller.poll(round(timeout * 1000)))
            if events.get(jobs_fd, 0) & gone:
                break
            if sender.wake_reader in events:  # armed: the first send is due in HOLD_SECONDS
                _drain(poller, sender.wake_reader)
                timeout = HOLD_SECONDS
            else:
                timeout = sender.tick()
        if segments is not None:
            segments.remove()
        time.sleep(MASTER_GONE_GRACE_SECONDS)  # a deadline, not a wait for a condition
        os._exit(EXIT_MASTER_GONE)

    threading.Thread(target=watch, name="minipool-lifeline", daemon=True).start()


def _drain(poller: select.poll, fd: int) -> None:
    try:
        os.read(fd, 4096)
    except OSError:  # a job closed it: stop listening to it
        poller.unregister(fd)


def _serve(
    jobs_fd: int,
    sender: Sender,
    context: _context.WorkerContext,
    gate: Gate,
    max_memory: int | None,
) -> None:
    reader = FrameReader()
    functions = FunctionCache()
    frames: deque[tuple[int, memoryview]] = deque()
    task = 0  # the number of the last task received (see shared.Gate)
    try:
        while True:
            if not frames:
                sender.flush()
                data = os.read(jobs_fd, READ_SIZE)
                if not data:  # the master is gone (as the lifeline sees it)
                    if context.segments is not None:
                        context.segments.remove()
                    return
                frames.extend(reader.feed(data))
                continue
            kind, frame = frames.popleft()
            if kind == RELEASE:
                forget(os.fsdecode(bytes(frame)))
                continue
            if kind == RETURN and context.segments is not None:
                context.segments.returned(split_paths(frame))
                continue
            if kind != CHUNK or context.shared.stop_requested:
                return
            task += 1
            first, size, flags = CHUNK_PREFIX.unpack_from(frame)
            timed = bool(flags & TIMED)
            if not gate.claim(task, first if size == 1 else CHUNK_WIDE, timed):
                continue  # taken back by the master
            payload = frame[CHUNK_PREFIX.size :]
            execute(payload, first, size, functions, context, sender, task=task, timed=timed)
            if max_memory is not None and resident_bytes() > max_memory:
                sender.add(RECYCLING)
                return
            sender.flush_if_waiting()
    finally:
        sender.flush()


def resident_bytes() -> int:
    """This process's resident memory now (Linux), or its peak (elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
