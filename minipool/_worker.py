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
import inspect
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
from itertools import count
from time import monotonic, perf_counter
from typing import Any

from . import _context
from ._log_shipping import LOG_FLUSH_SECONDS, LogShipper
from ._log_shipping import install as install_logging
from ._log_spill import LogSpill
from ._logging import LogLevels
from ._messages import (
    CHUNK,
    INIT_FAILED,
    OUTCOME,
    READY,
    RECYCLING,
    Chunk,
    ErrorInfo,
    FrameReader,
    Outbox,
    Outcome,
)
from ._pickling import PROTOCOL, FunctionCache, dumps, dumps_value, error_info, loads
from ._shared import IDLE, SharedState

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


def start(init_blob: bytes | None) -> tuple[Any, Callable[[], None]]:
    """Run ``init``; return the worker state and the teardown to run at exit."""
    if init_blob is None:
        return None, _nothing
    init, init_args = loads(init_blob)
    if not inspect.isgeneratorfunction(init):
        return init(*init_args), _nothing
    manager = contextlib.contextmanager(init)(*init_args)
    state = manager.__enter__()

    def teardown() -> None:
        manager.__exit__(None, None, None)

    return state, teardown


def _nothing() -> None:
    pass


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


def execute(
    payload: bytes | memoryview, functions: FunctionCache, context: _context.WorkerContext
) -> bytes:
    """Run a pickled ``Chunk``; return its pickled ``Outcome``. Every backend runs jobs here."""
    try:
        chunk: Chunk = loads(payload)
        fn = functions.load(chunk.fn)
    except Exception as error:
        return dumps(_unreadable_chunk(error), protocol=PROTOCOL)
    return encode_outcome(run_chunk(chunk, fn, context))


def _unreadable_chunk(error: Exception) -> Outcome:
    """The outcome of a chunk whose function or arguments did not unpickle here."""
    info = error_info(error)
    message = (
        f"the job could not be unpickled in the worker: {info.message}. Its function and "
        "arguments must be importable in worker processes (define them in a module, or "
        "pass functions defined in __main__ by value: lambdas and closures are)."
    )
    return Outcome(-1, None, {0: ErrorInfo(info.type_name, message, info.traceback, None)}, 0.0)


def resident_bytes() -> int:
    """This process's resident memory now (Linux), or its peak (elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def run_chunk(chunk: Chunk, fn: Any, context: _context.WorkerContext) -> Outcome:
    """Run every job of ``chunk``; each job's exception is caught and becomes its outcome.

    The worker's ``running`` slot holds the id of the job in progress (of the
    chunk's first job, if the chunk is not tracked), so that whoever watches
    this process knows which job it died in; for a timed chunk its
    ``started`` slot holds when that job started.
    """
    # Every BaseException is the job's own (this process ignores SIGINT): a job
    # raising KeyboardInterrupt or asyncio.CancelledError must not kill the worker.
    values: list[Any] = []
    errors: dict[int, ErrorInfo] = {}
    call = _star_call(fn, chunk.kwargs) if chunk.star else fn
    slot = context.worker_id
    running = context.shared.running_slots
    started = context.shared.started_slots if chunk.timed else None
    began = perf_counter()
    if chunk.tracked:
        append = values.append
        for job_id, item in zip(count(chunk.first_job_id), chunk.items):
            if started is not None:
                started[slot] = monotonic()
            running[slot] = job_id
            try:
                append(call(item))
            except BaseException as error:
                errors[len(values)] = error_info(error)
                append(None)
    else:
        running[slot] = chunk.first_job_id
        items = iter(chunk.items)
        context.untracked = (chunk.first_job_id, items, len(chunk.items))
        calls = map(call, items)
        while True:
            try:
                values.extend(calls)  # keeps the values before a job that raises
                break
            except BaseException as error:
                errors[len(values)] = error_info(error)
                values.append(None)  # map() resumes with the next job
        context.untracked = None
    running[slot] = IDLE
    return Outcome(chunk.first_job_id, values, errors or None, perf_counter() - began)


def _star_call(fn: Any, kwargs: dict[str, Any] | None) -> Callable[[tuple[Any, ...]], Any]:
    if kwargs:
        return lambda args: fn(*args, **kwargs)
    return lambda args: fn(*args)


def encode_outcome(outcome: Outcome) -> bytes:
    """Pickle ``outcome``; a result that does not pickle becomes that job's error."""
    try:
        return dumps_value(outcome)
    except Exception:
        return dumps(_replace_unpicklable(outcome), protocol=PROTOCOL)


def _replace_unpicklable(outcome: Outcome) -> Outcome:
    values = list(outcome.values or ())
    errors = dict(outcome.errors or {})
    for position, value in enumerate(values):
        try:
            dumps_value(value)
        except Exception as error:
            job_id = outcome.first_job_id + position
            values[position] = None
            info = error_info(error)
            errors[position] = ErrorInfo(
                info.type_name,
                f"the result of job {job_id} (a {type(value).__qualname__}) could not be "
                f"pickled to send it back: {info.message}. Return picklable values.",
                info.traceback,
                None,
            )
    return Outcome(outcome.first_job_id, values, errors, outcome.seconds)
