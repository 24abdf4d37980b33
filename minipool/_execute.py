"""Running jobs, on every backend: init and teardown, a pickled chunk in, a pickled outcome out."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from itertools import count
from time import monotonic, perf_counter
from typing import Any

from . import _context
from ._context import IDLE
from ._messages import Chunk, ErrorInfo, Outcome
from ._pickling import PROTOCOL, FunctionCache, dumps, dumps_value, error_info, loads


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
