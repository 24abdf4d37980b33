"""The worker process: init, the job loop, teardown.

A worker reads chunk frames from its own jobs pipe, runs each job, and writes
outcome frames to its own results pipe. Both pipes belong to this worker
alone, so no lock is ever shared with another process.

Outcomes are batched: they are written when the worker runs out of buffered
frames (so an idle master hears back at once) or when the oldest unsent one is
``FLUSH_AFTER`` old (so a long chunk behind short ones does not hold their
results back).

What the worker logs travels on the same results pipe, written just before
the outcomes (see ``_log_shipping``), so the caller sees a job's events before
its result.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import select
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from ... import _context
from ..._execute import execute, start
from ..._log_shipping import LOG_FLUSH_SECONDS, LogShipper
from ..._log_shipping import install as install_logging
from ..._logging import LogLevels
from ..._messages import (
    CHUNK,
    INIT_FAILED,
    OUTCOME,
    READY,
    RECYCLING,
    FrameReader,
    Outbox,
)
from ..._pickling import PROTOCOL, FunctionCache, dumps, error_info
from .log_spill import LogSpill
from .shared import SharedState

# Large enough to take a whole batch of small chunks in one system call.
READ_SIZE = 1 << 20
# Upper bound on how long a finished outcome waits for company before it is
# sent. Shorter means more writes under load; longer delays results.
FLUSH_AFTER = 0.002
# When the caller's process dies (SIGKILL), an idle worker sees EOF and leaves
# through its teardown at once; one busy in a job gets this long to finish
# before the lifeline thread ends the process.
MASTER_GONE_GRACE_SECONDS = 2.0
EXIT_MASTER_GONE = 75
TICK_MILLISECONDS = round(LOG_FLUSH_SECONDS * 1000)


@dataclass(frozen=True)
class WorkerConfig:
    worker_id: int
    init: bytes | None  # pickled (init, init_args)
    shared: SharedState
    log_spill: LogSpill
    log_levels: LogLevels
    # Under fork the child inherits the master's ends of every pipe; it must
    # close them, or it would hold its own jobs pipe open and never see EOF
    # when the master dies. Empty under spawn and forkserver.
    inherited_fds: tuple[int, ...] = ()
    # max_worker_memory: exit, between chunks, once resident memory passes it.
    max_memory: int | None = None


def main(config: WorkerConfig, jobs: Any, results: Any) -> None:
    """Entry point of a worker process; ``jobs`` and ``results`` are its pipe ends."""
    for fd in config.inherited_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    # Ctrl-C reaches the whole process group; the caller decides what it means.
    # (This process started with SIGINT blocked: see _processes._sigint_blocked.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    context = _context.WorkerContext(config.worker_id, config.shared)
    _context.install(context)
    shipper = LogShipper(config.log_spill, results.fileno(), context.job_id)
    _start_lifeline(jobs.fileno(), shipper.flush_if_due)
    context.logger = install_logging(config.log_levels, shipper.ship)
    outbox = Outbox(results.fileno())
    flush = functools.partial(shipper.flush, outbox)
    try:
        context.state, teardown = start(config.init)
    except BaseException as error:
        outbox.add(INIT_FAILED, dumps(error_info(error), protocol=PROTOCOL))
        flush()
        return
    # At once, not with the first outcomes: a worker killed by its first job
    # must not look to the master as one that died in init.
    outbox.add(READY)
    flush()
    try:
        _serve(jobs.fileno(), outbox, flush, context, config.max_memory)
    finally:
        try:
            teardown()
        finally:
            flush()  # what the teardown logged


def _start_lifeline(jobs_fd: int, tick: Callable[[], None]) -> None:
    """End this process soon after the master's process dies, even in the middle of a job.

    Only the master holds the write end of the jobs pipe, so the read end
    reports POLLHUP exactly when the master's process is gone. A thread waits
    for that with an empty event mask, which never consumes the jobs, and
    calls ``tick`` (which writes log events that have waited too long) every
    ``LOG_FLUSH_SECONDS`` meanwhile.
    """
    poller = select.poll()
    poller.register(jobs_fd, 0)

    # POLLNVAL too: a worker whose jobs pipe is gone (a job closed it) cannot
    # serve, and poll() would otherwise return at once, for ever.
    gone = select.POLLHUP | select.POLLERR | select.POLLNVAL

    def watch() -> None:
        while not any(mask & gone for _, mask in poller.poll(TICK_MILLISECONDS)):
            tick()
        time.sleep(MASTER_GONE_GRACE_SECONDS)  # a deadline, not a wait for a condition
        os._exit(EXIT_MASTER_GONE)

    threading.Thread(target=watch, name="minipool-lifeline", daemon=True).start()


def _serve(
    jobs_fd: int,
    outbox: Outbox,
    flush: Callable[[], None],
    context: _context.WorkerContext,
    max_memory: int | None,
) -> None:
    reader = FrameReader()
    functions = FunctionCache()
    frames: deque[tuple[int, memoryview]] = deque()
    try:
        while True:
            if not frames:
                flush()
                data = os.read(jobs_fd, READ_SIZE)
                if not data:
                    return  # the master is gone
                frames.extend(reader.feed(data))
                continue
            kind, payload = frames.popleft()
            if kind != CHUNK or context.shared.stop_requested:
                return
            outbox.add(OUTCOME, execute(payload, functions, context))
            if max_memory is not None and resident_bytes() > max_memory:
                outbox.add(RECYCLING)
                return
            if perf_counter() - outbox.since > FLUSH_AFTER:
                flush()
    finally:
        flush()


def resident_bytes() -> int:
    """This process's resident memory now (Linux), or its peak (elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
