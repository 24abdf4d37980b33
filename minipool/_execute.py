"""Running jobs, on every backend: init and teardown, then a pickled chunk in, outcomes out.

``execute`` runs one chunk where a backend put it (a worker process of the
pool, a Dask worker's thread) and hands what comes of it to that backend's
``Progress``, as ``Outcome`` pickles: every job's exception is caught and is
that job's outcome, and so is anything raised while its arguments are
unpickled or its result is pickled (``BaseException`` included: the process
ignores SIGINT, so a ``KeyboardInterrupt`` or ``SystemExit`` here is the job's
own). A tracked chunk pickles each result while its job is the one in hand,
so a job whose result kills the worker as it pickles is the one blamed, and
the results done so far can leave while the chunk runs on.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from time import monotonic, perf_counter
from typing import Any, NoReturn, Protocol

from . import _context
from ._context import CHUNK_WIDE, IDLE, RUNNING_CELL
from ._messages import ADAPTIVE, UNTRACKED, Buffer, Chunk, ErrorInfo, Outcome
from ._pickling import FunctionCache, dumps_value, error_info, loads_value
from ._scheduling import UNTRACKED_BELOW_SECONDS
from ._segments import SegmentDir

# How many jobs of an ADAPTIVE chunk run tracked before the worker judges
# whether they are tiny: enough to average out the first job's warm-up, few
# enough that tracking them costs little if they are (a tracked job costs
# about a microsecond more).
MEASURED_JOBS = 16


def start(
    init: Callable[..., Any] | None, init_args: tuple[Any, ...]
) -> tuple[Any, Callable[[], None]]:
    """Run ``init``; return the worker state and the teardown to run at exit."""
    if init is None:
        return None, _nothing
    if not inspect.isgeneratorfunction(init):
        return init(*init_args), _nothing
    manager = contextlib.contextmanager(init)(*init_args)
    state = manager.__enter__()

    def teardown() -> None:
        manager.__exit__(None, None, None)

    return state, teardown


def _nothing() -> None:
    pass


class Results:
    """One task's outcomes as its jobs finish, handed out in order as ``Outcome`` pickles.

    Tracked jobs add a pickle each; an untracked run of jobs adds one pickle
    for all of them (``add_batch``), after any tracked ones. The job's thread
    adds; ``take`` may also be called from another thread (the process
    worker's lifeline, under the worker's send lock), so an error is recorded
    before the slot of its job appears in ``_blobs``.
    """

    __slots__ = ("_batch", "_blobs", "_errors", "_sent", "_sent_at", "first_job_id", "size", "task")

    def __init__(self, task: int, first_job_id: int, size: int) -> None:
        self.task = task
        self.first_job_id = first_job_id
        self.size = size
        self._blobs: list[Buffer] = []  # one pickled value per tracked job done (b"": failed)
        self._errors: dict[int, ErrorInfo] = {}  # by position in the task
        self._batch: tuple[int, bytes] | None = None  # untracked jobs: how many, their values
        self._sent = 0  # jobs handed out already
        self._sent_at = perf_counter()

    @property
    def done(self) -> int:
        """Tracked jobs done (an untracked run comes after them)."""
        return len(self._blobs)

    @property
    def unsent(self) -> int:
        """Tracked jobs done whose outcomes were not handed out yet."""
        return len(self._blobs) - self._sent

    def add(self, blob: bytes) -> None:
        self._blobs.append(blob)

    def add_error(self, info: ErrorInfo) -> None:
        self._errors[len(self._blobs)] = info
        self._blobs.append(b"")

    def add_batch(self, jobs: int, batch: bytes, errors: dict[int, ErrorInfo]) -> None:
        """The outcomes of the next ``jobs`` jobs at once (``errors`` by position among them)."""
        start = len(self._blobs)
        self._errors.update({start + position: info for position, info in errors.items()})
        self._batch = (jobs, batch)

    def fail_all(self, info: ErrorInfo) -> None:
        """Every job fails with ``info`` (the chunk itself could not be read)."""
        self._errors = dict.fromkeys(range(self.size), info)
        self._blobs = [b""] * self.size

    def take(self, final: bool) -> list[Outcome]:
        """The ``Outcome``s of what was done since the last take (none, one, or a tracked
        run and then an untracked one); a ``final`` take ends with a final one."""
        outcomes = []
        batch, self._batch = self._batch, None
        if self.unsent:
            values = self._blobs[self._sent :]
            outcomes.append(self._outcome(len(values), values, final and batch is None))
        if batch is not None:
            outcomes.append(self._outcome(batch[0], batch[1], final))
        if final and not outcomes:
            outcomes.append(self._outcome(0, [], True))
        return outcomes

    def _outcome(self, size: int, values: Buffer | list[Buffer], final: bool) -> Outcome:
        start, now = self._sent, perf_counter()
        # list(): one C call, so that the job's thread cannot add an error meanwhile.
        errors = {p - start: e for p, e in list(self._errors.items()) if start <= p < start + size}
        seconds = now - self._sent_at
        self._sent, self._sent_at = start + size, now
        return Outcome(self.task, start, size, values, errors or None, seconds, final)


class Progress(Protocol):
    """Where a backend takes a chunk's outcomes as it runs."""

    def began(self, results: Results) -> None:
        """A task was claimed; its outcomes will be added to ``results``."""

    def job_done(self, results: Results) -> None:
        """A job of a tracked chunk finished, and another may start: a chance to send."""

    def ended(self, results: Results) -> None:
        """No job of the task runs any more: take the final outcome."""


def execute(
    payload: bytes | memoryview,
    first_job_id: int,
    size: int,
    functions: FunctionCache,
    context: _context.WorkerContext,
    progress: Progress,
    *,
    task: int = 0,
    timed: bool = False,
) -> None:
    """Run a pickled ``Chunk`` of ``size`` jobs from ``first_job_id`` on, reporting to
    ``progress``. Every backend runs jobs here.

    While it unpickles the chunk, the worker's running cell says what its
    backend put there when it claimed the task (the job, for a chunk of one).
    """
    results = Results(task, first_job_id, size)
    progress.began(results)
    try:
        chunk = Chunk.of(loads_value(payload))
        fn = functions.load(chunk.fn)
    except BaseException as error:
        results.fail_all(_unreadable_chunk(error))
    else:
        run_chunk(chunk, fn, context, results, progress, timed)
        # Its arguments go now, and so do their segments' mappings (unless a job kept
        # them): reported with the outcome, the segments can be written again.
        del chunk
    context.cells.jobs[RUNNING_CELL] = IDLE
    progress.ended(results)


def run_chunk(
    chunk: Chunk,
    fn: Any,
    context: _context.WorkerContext,
    results: Results,
    progress: Progress,
    timed: bool = False,
) -> None:
    """Run the jobs of ``chunk`` (its function unpickled: ``fn``) into ``results``."""
    context.attempts = chunk.attempts
    call = _star_call(fn, chunk.kwargs) if chunk.star else fn
    items = chunk.items
    if chunk.tracking == UNTRACKED:
        _run_untracked(items, call, context, results)
        return
    rest = _run_tracked(items, call, context, results, progress, timed, chunk.tracking)
    if rest is not None:
        _run_untracked(items[rest:], call, context, results)


def _unreadable_chunk(error: BaseException) -> ErrorInfo:
    """The error of every job of a chunk whose function or arguments did not unpickle here."""
    info = error_info(error)
    message = (
        f"the job could not be unpickled in the worker: {info.message}. Its function and "
        "arguments must be importable in worker processes (define them in a module, or "
        "pass functions defined in __main__ by value: lambdas and closures are)."
    )
    return ErrorInfo(info.type_name, message, info.traceback, None)


def _run_tracked(
    items: list[Any],
    call: Callable[[Any], Any],
    context: _context.WorkerContext,
    results: Results,
    progress: Progress,
    timed: bool,
    tracking: int,
) -> int | None:
    """Each job in turn, its id published while it runs and while its result pickles.

    ``stop()`` ends the chunk between jobs: the ones after never start. An
    ``ADAPTIVE`` chunk whose first jobs prove tiny stops being tracked: the
    position from which the rest should run untracked is returned.
    """
    jobs = context.cells.jobs
    started = context.cells.started
    shared = context.shared
    job = results.first_job_id
    began = perf_counter()
    for position, item in enumerate(items):
        if position:
            if shared.stop_requested:
                return None
            if position == MEASURED_JOBS and tracking == ADAPTIVE and _tiny(began, position):
                return position
        if timed:
            started[0] = monotonic()
        jobs[RUNNING_CELL] = job
        try:
            value = call(item)
        except BaseException as error:
            if context.forked:
                leave_forked_child(error)
            results.add_error(error_info(error))
        else:
            if context.forked:
                leave_forked_child(None)
            _add_value(results, value, job, context.segments)
        jobs[RUNNING_CELL] = IDLE  # its outcome is ready: a death now is not its doing
        progress.job_done(results)
        job += 1
    return None


def _tiny(began: float, jobs: int) -> bool:
    return perf_counter() - began < jobs * UNTRACKED_BELOW_SECONDS


def _add_value(results: Results, value: Any, job: int, segments: SegmentDir | None) -> None:
    try:
        results.add(dumps_value(value, segments))
    except BaseException as error:
        results.add_error(_unpicklable_result(value, job, error))


def _run_untracked(
    items: list[Any],
    call: Callable[[Any], Any],
    context: _context.WorkerContext,
    results: Results,
) -> None:
    """Every job in one C-level loop, then every result in one pickle: the fast path for
    tiny jobs, at the price of knowing only the chunk, not the job, while it runs."""
    values: list[Any] = []
    errors: dict[int, ErrorInfo] = {}
    first = results.first_job_id + results.done
    context.cells.jobs[RUNNING_CELL] = CHUNK_WIDE
    iterator = iter(items)
    context.untracked = (first, iterator, len(items))
    calls = map(call, iterator)
    while True:
        try:
            values.extend(calls)  # keeps the values before a job that raises
            break
        except BaseException as error:
            if context.forked:
                leave_forked_child(error)
            errors[len(values)] = error_info(error)
            values.append(None)  # map() resumes with the next job
    if context.forked:
        leave_forked_child(None)
    context.untracked = None
    try:
        results.add_batch(len(values), dumps_value(values, context.segments), errors)
    except BaseException:
        for position, value in enumerate(values):  # which ones do not pickle
            if position in errors:
                results.add_error(errors[position])
            else:
                _add_value(results, value, first + position, context.segments)


def leave_forked_child(error: BaseException | None) -> NoReturn:
    """A job forked, and the child came back from the job's function (returned, or raised
    ``error``) instead of exiting: end that process here, with the status the interpreter
    would give it, before it can read the worker's jobs or send an outcome in its name.
    """
    status = 0
    if isinstance(error, SystemExit):
        status = error.code if isinstance(error.code, int) else int(error.code is not None)
        if error.code is not None and not isinstance(error.code, int):
            print(error.code, file=sys.stderr)
    elif error is not None:
        traceback.print_exception(error)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


def _star_call(fn: Any, kwargs: dict[str, Any] | None) -> Callable[[tuple[Any, ...]], Any]:
    if kwargs:
        return lambda args: fn(*args, **kwargs)
    return lambda args: fn(*args)


def _unpicklable_result(value: Any, job: int, error: BaseException) -> ErrorInfo:
    info = error_info(error)
    return ErrorInfo(
        info.type_name,
        f"the result of job {job} (a {type(value).__qualname__}) could not be pickled to "
        f"send it back: {info.message}. Return picklable values.",
        info.traceback,
        None,
    )


class LastOutcome:
    """A ``Progress`` that takes every outcome at the end (the Dask backend's)."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    def began(self, results: Results) -> None:
        pass

    def job_done(self, results: Results) -> None:
        pass

    def ended(self, results: Results) -> None:
        self.outcomes = results.take(final=True)
