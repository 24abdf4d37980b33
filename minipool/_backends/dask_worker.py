"""What runs inside a Dask worker for a minipool pool: its init plugin and its task.

    caller (DaskBackend)                         Dask worker process
    ────────────────────                         ───────────────────
    client.register_plugin(WorkerSetup) ───────► WorkerSetup.setup: init → PoolSetup
    client.submit(run_task, name, chunk) ──────► run_task: _execute.execute(chunk) in a
                                                   job thread with its WorkerContext
    Ledger.settle / LogRouter.deliver    ◄────── (worker name, pid, LOGS payload, Outcome)
    client.run(request_stop, name)       ──────► PoolSetup.stopped: stop_requested()
    client.run(tear_down, name)          ──────► the init's teardown, its logs returned
    client.unregister_worker_plugin             (WorkerSetup.teardown, when a worker
                                                 closes first: logs to its stderr)

A Dask worker may serve several pools, each job in a thread of its own, so
what a pool's jobs share lives in ``_pools`` here, keyed by the pool's plugin
name: an importable module is the one place that a plugin and a task, both
possibly pickled by value from the caller's ``__main__``, see alike.

What a job logs is collected per thread and returned with its outcome, so the
caller delivers a job's events before its result, as on the process pool.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from distributed import WorkerPlugin, get_worker

from .. import _context
from .._context import IDLE
from .._errors import InitError, TaskTimeout
from .._execute import LastOutcome, execute, start
from .._log_shipping import install as install_logging
from .._logging import STRUCTLOG_EVENT, LogLevels
from .._messages import ErrorInfo, Outcome, encode_event, pack_events
from .._pickling import PROTOCOL, FunctionCache, dumps, error_info, loads

# What run_task returns: the worker's name, address and pid, a LOGS payload, the
# Outcomes, and whether the job overran task_timeout (its worker must go).
TaskResult = tuple[Any, str, int, bytes, list[Outcome], bool]


@dataclass
class PoolSetup:
    """One pool's state in this worker process."""

    state: Any = None
    teardown: Callable[[], None] | None = None
    init_error: ErrorInfo | None = None
    stopped: bool = False
    functions: FunctionCache = field(default_factory=FunctionCache)
    # What init logged, shipped with the next outcome of this pool here.
    init_logs: list[bytes] = field(default_factory=list)


_pools: dict[str, PoolSetup] = {}


class WorkerSetup(WorkerPlugin):
    """Runs the pool's ``init`` once per Dask worker process, and its teardown at the end."""

    def __init__(self, name: str, init: bytes | None, levels: LogLevels) -> None:
        self.name = name
        self.init = init
        self.levels = levels

    def setup(self, worker: Any) -> None:
        _install_logging(self.levels)
        setup = _pools[self.name] = PoolSetup()
        with _collected_logs() as events:
            try:
                init, init_args = (None, ()) if self.init is None else loads(self.init)
                setup.state, setup.teardown = start(init, init_args)
            except BaseException as error:
                setup.init_error = error_info(error)
                raise  # register_plugin() raises it in the caller
            finally:
                setup.init_logs = events

    def teardown(self, worker: Any) -> None:
        """The worker is closing (the pool's own shutdown has run ``tear_down`` first)."""
        _tear_down_here(self.name)


def tear_down(name: str, dask_worker: Any) -> tuple[Any, int, bytes]:
    """``Pool.shutdown`` (through ``client.run``): run the teardown now; return what it logged."""
    with _collected_logs() as events:
        events += _tear_down_here(name)
    return dask_worker.name, os.getpid(), pack_events(events)


def _tear_down_here(name: str) -> list[bytes]:
    """Run this pool's teardown in this process; return what init logged if no job shipped it."""
    setup = _pools.pop(name, None)
    if setup is None:
        return []
    if setup.teardown is not None:
        try:
            setup.teardown()
        except Exception:
            logging.getLogger("minipool").exception("the init's teardown failed on this worker")
    return setup.init_logs


def started_topic(name: str) -> str:
    """The event topic on which this pool's tasks say they have started."""
    return f"{name}-started"


def request_stop(name: str) -> None:
    """``Pool.stop()``: from now on ``stop_requested()`` is true in this pool's jobs here."""
    setup = _pools.get(name)
    if setup is not None:
        setup.stopped = True


def run_task(
    name: str,
    payload: bytes,
    first_job_id: int,
    size: int,
    timeout: float | None,
    *shared: object,
) -> TaskResult:
    """The Dask task of every minipool chunk: run it here, return its outcome and its logs.

    ``shared`` are the pool's live ``Shared`` objects, unused here: the task
    depends on them so that they are in this worker's memory when its jobs
    unpickle them (see ``_sharing.from_cluster``).
    """
    del shared
    worker = get_worker()
    setup = _pools.get(name)
    events: list[bytes] = []
    overran = False
    chunk = _ChunkCall(payload, first_job_id, size)
    if setup is not None and setup.stopped:
        # stop() came first: a task Dask starts anyway (a cancel can overtake
        # the task it cancels) runs none of its jobs, and they are cancelled.
        return worker.name, worker.address, os.getpid(), pack_events([]), [_NOTHING_RAN], False
    # The caller learns the task started (Future.running(), and that it can no
    # longer be cancelled); see DaskBackend._on_started.
    worker.log_event(started_topic(name), str(worker.get_current_task()))
    if setup is None or setup.init_error is not None:
        outcome = _init_failed(chunk, worker.name, setup)
    elif timeout is None:
        outcome = _execute(chunk, setup, events)
    else:
        outcome, overran = _execute_timed(chunk, setup, events, timeout, worker.name)
        events = list(events)  # an overrunning job may still be adding to it
    if setup is not None and setup.init_logs:
        events[:0], setup.init_logs = setup.init_logs, []
    return worker.name, worker.address, os.getpid(), pack_events(events), outcome, overran


# The final outcome of a task whose jobs did not run.
_NOTHING_RAN = Outcome(0, 0, 0, [], None, 0.0, True)


@dataclass(frozen=True)
class _ChunkCall:
    payload: bytes
    first_job_id: int
    size: int


class _JobCells:
    """What ``execute`` and ``stop_requested()`` read: one job thread's stand-in for the
    process pool's ``SharedState`` and ``Gate`` (nobody reads its cells: Dask knows
    where its tasks run)."""

    __slots__ = ("_setup", "jobs", "started")

    def __init__(self, setup: PoolSetup) -> None:
        self._setup = setup
        self.jobs = [0, IDLE]
        self.started = [0.0]

    @property
    def stop_requested(self) -> bool:
        return self._setup.stopped


def _execute(chunk: _ChunkCall, setup: PoolSetup, events: list[bytes]) -> list[Outcome]:
    cells = _JobCells(setup)
    context = _context.WorkerContext(0, cells, cells, setup.state, _logger)
    outcome = LastOutcome()
    with _context.in_this_thread(context), _collected_logs(events):
        execute(chunk.payload, chunk.first_job_id, chunk.size, setup.functions, context, outcome)
    return outcome.outcomes


def _execute_timed(
    chunk: _ChunkCall, setup: PoolSetup, events: list[bytes], timeout: float, worker: Any
) -> tuple[list[Outcome], bool]:
    """Run the chunk (of one job: the backend sends timed jobs alone) in a thread of its own.

    A thread cannot be stopped, so a job that overruns is left running and
    reported as ``TaskTimeout``; the caller then restarts this worker.
    """
    done: list[list[Outcome]] = []
    thread = threading.Thread(
        target=lambda: done.append(_execute(chunk, setup, events)),
        name="minipool-timed-job",
        daemon=True,
    )
    thread.start()
    thread.join(timeout)
    if done:
        return done[0], False
    job = chunk.first_job_id
    error = TaskTimeout(
        f"job {job} ran longer than task_timeout ({timeout:g} s) on Dask worker "
        f"{worker!r}; that worker is being restarted",
        job_id=job,
        seconds=timeout,
    )
    return _failed(chunk, error_info(error)), True


def _init_failed(chunk: _ChunkCall, worker: Any, setup: PoolSetup | None) -> list[Outcome]:
    if setup is None or setup.init_error is None:
        message, traceback = (
            f"the pool's init has not run on Dask worker {worker!r}: its plugin is not "
            "registered there (the pool was shut down, or the worker lost it)",
            "",
        )
    else:
        cause = setup.init_error
        message, traceback = (
            f"init failed on Dask worker {worker!r}: {cause.type_name}: {cause.message}. No "
            "job can run there; fix init and create a new Pool",
            cause.traceback,
        )
    error = InitError(message)
    return _failed(chunk, ErrorInfo("InitError", message, traceback, dumps(error, PROTOCOL)))


def _failed(chunk: _ChunkCall, info: ErrorInfo) -> list[Outcome]:
    """The outcome of a chunk whose every job failed with ``info``."""
    size = chunk.size
    errors = dict.fromkeys(range(size), info)
    return [Outcome(0, 0, size, [b""] * size, errors, 0.0, True)]


# ---- logging ---------------------------------------------------------------------------

_logger: Any = None  # what get_logger() binds in jobs here; one per process
_install_lock = threading.Lock()
_collecting = threading.local()  # .events: where this thread's job events go


def _install_logging(levels: LogLevels) -> None:
    """Ship what jobs log, once per process: the levels of the first pool here apply."""
    global _logger
    with _install_lock:
        if _logger is None:
            _logger = install_logging(levels, _ship, own_process=False)


@contextmanager
def _collected_logs(events: list[bytes] | None = None) -> Iterator[list[bytes]]:
    """Collect what this thread logs into ``events`` while the block runs."""
    collected: list[bytes] = [] if events is None else events
    _collecting.events = collected
    try:
        yield collected
    finally:
        _collecting.events = None


def _ship(kind: int, event: Any) -> None:
    events = getattr(_collecting, "events", None)
    context = _context.current()
    job_id = None if context is None else context.job_id()
    if events is not None:
        events.append(encode_event(kind, job_id, event))
    elif kind == STRUCTLOG_EVENT:
        # Logged outside a job (a teardown, a thread a job left behind): the
        # worker's own stderr is the one place it can still go.
        print(f"minipool: {dict(event, job_id=job_id)!r}", file=sys.stderr)
