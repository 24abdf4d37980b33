"""The public surface: the names minipool exports, their pickling, and checks on bad input."""

from __future__ import annotations

import dataclasses
import multiprocessing
import pickle
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import jobs
import pytest
from helpers import Snapshot

import minipool

MakePool = Callable[..., minipool.Pool]

PUBLIC_NAMES = [
    "InitError",
    "Pool",
    "PoolError",
    "PoolStats",
    "RemoteError",
    "RemoteTraceback",
    "Shared",
    "TaskTimeout",
    "WorkerCrashed",
    "get_logger",
    "stop_requested",
    "worker_state",
]


def test_all_is_sorted_and_complete() -> None:
    """__all__ is sorted and lists exactly the documented public names, which ``dir()``
    shows before they are loaded (most are loaded on first use)."""
    assert minipool.__all__ == sorted(minipool.__all__)
    assert minipool.__all__ == PUBLIC_NAMES
    public = {name for name in dir(minipool) if not name.startswith("_")}
    assert public == set(PUBLIC_NAMES)


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_names_report_module_minipool(name: str) -> None:
    """Every public class and function says it comes from ``minipool``, not a private module."""
    assert getattr(minipool, name).__module__ == "minipool"


def test_pool_is_an_executor() -> None:
    """Pool is a concurrent.futures.Executor."""
    from concurrent.futures import Executor

    assert issubclass(minipool.Pool, Executor)


def test_exception_tree() -> None:
    """minipool's own errors share PoolError; TaskTimeout is also a TimeoutError."""
    for error in (minipool.RemoteError, minipool.WorkerCrashed, minipool.InitError):
        assert issubclass(error, minipool.PoolError)
    assert issubclass(minipool.TaskTimeout, minipool.PoolError)
    assert issubclass(minipool.TaskTimeout, TimeoutError)


EXCEPTIONS = {
    "PoolError": (minipool.PoolError("pool went away"), {}),
    "RemoteTraceback": (minipool.RemoteTraceback("Traceback ...\nValueError: x\n"), {}),
    "RemoteError": (
        minipool.RemoteError("KeyError", "'k'", "Traceback ...\n"),
        {"type_name": "KeyError", "message": "'k'", "traceback": "Traceback ...\n"},
    ),
    "WorkerCrashed": (
        minipool.WorkerCrashed(
            "worker 1 (pid 42) was killed by SIGKILL while running job 7",
            job_id=7,
            worker_id=1,
            pid=42,
            exitcode=-9,
            signal="SIGKILL",
        ),
        {"job_id": 7, "worker_id": 1, "pid": 42, "exitcode": -9, "signal": "SIGKILL"},
    ),
    "InitError": (minipool.InitError("init failed", worker_id=3), {"worker_id": 3}),
    "TaskTimeout": (
        minipool.TaskTimeout("job 5 ran over 2.5 s", job_id=5, seconds=2.5),
        {"job_id": 5, "seconds": 2.5},
    ),
}


@pytest.mark.parametrize(("error", "fields"), EXCEPTIONS.values(), ids=EXCEPTIONS.keys())
def test_exceptions_round_trip_through_pickle(error: Exception, fields: dict[str, Any]) -> None:
    """Every public exception pickles and comes back with the same type, message and fields."""
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.args == error.args
    for name, value in fields.items():
        assert getattr(copy, name) == value


def test_pool_stats_is_frozen_and_pickles() -> None:
    """PoolStats is a frozen dataclass with the documented fields, and pickles."""
    stats = minipool.PoolStats(
        submitted=5,
        completed=4,
        failed=1,
        retried=0,
        running=1,
        workers_alive=2,
        worker_restarts=0,
    )
    assert [f.name for f in dataclasses.fields(stats)] == [
        "submitted",
        "completed",
        "failed",
        "retried",
        "running",
        "workers_alive",
        "worker_restarts",
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.failed = 0  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(stats)) == stats


# ---- bad input is refused at the call, naming the argument ---------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"workers": 0}, ValueError, "workers"),
        ({"workers": -1}, ValueError, "workers"),
        ({"workers": "x"}, TypeError, "workers"),
        ({"workers": 2.5}, TypeError, "workers"),
        ({"workers": True}, TypeError, "workers"),
        ({"init": 42}, TypeError, "init"),
        ({"init": jobs.init_value, "init_args": 5}, TypeError, "init_args"),
        ({"init": jobs.init_value, "init_args": "ab"}, TypeError, "init_args"),
        (
            {
                "init": jobs.init_value,
                "init_args": (jobs.UnpicklableError("x"),),
                "start_method": "spawn",
            },
            TypeError,
            r"init_args\[0\]",
        ),
        ({"start_method": "threads"}, ValueError, "start_method"),
        ({"max_tasks_per_worker": 0}, ValueError, "max_tasks_per_worker"),
        ({"max_tasks_per_worker": 1.5}, TypeError, "max_tasks_per_worker"),
    ],
    ids=lambda value: repr(value) if not isinstance(value, type) else value.__name__,
)
def test_bad_pool_arguments(
    kwargs: dict[str, Any], error: type[Exception], match: str, make_pool: MakePool
) -> None:
    """Pool() refuses a bad argument with the right exception type, naming the argument."""
    kwargs = dict(kwargs)
    workers = kwargs.pop("workers", 1)
    with pytest.raises(error, match=match):
        make_pool(workers, **kwargs)


# ---- ProcessPoolExecutor's keywords ---------------------------------------------------


def test_process_pool_executor_keywords_are_synonyms(make_pool: MakePool) -> None:
    """max_workers, initializer, initargs and max_tasks_per_child mean what minipool's own
    names mean; _max_workers reads as ProcessPoolExecutor's does."""
    pool = make_pool(
        None,
        max_workers=1,
        initializer=jobs.init_value,
        initargs=("from initargs",),
        max_tasks_per_child=1,
    )
    assert pool.workers == pool._max_workers == 1
    assert pool.submit(jobs.read_state).result(timeout=30) == "from initargs"
    pids = {pool.submit(jobs.getpid).result(timeout=30) for _ in range(3)}
    assert len(pids) == 3  # a new worker after each job


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_mp_context_picks_the_start_method(
    method: str, leak_check: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mp_context=multiprocessing.get_context(METHOD) starts the workers that way: a fork
    worker sees what the caller changed since import, a spawned one does not."""
    monkeypatch.setattr(jobs, "CALLER_MARK", "changed in the caller")
    with minipool.Pool(1, mp_context=multiprocessing.get_context(method)) as pool:
        seen = pool.submit(jobs.caller_mark).result(timeout=30)
    assert seen == ("changed in the caller" if method == "fork" else "as imported")


@pytest.mark.parametrize(
    ("name", "alias", "value", "alias_value"),
    [
        ("workers", "max_workers", 1, 1),
        ("init", "initializer", jobs.init_value, jobs.init_value),
        ("init_args", "initargs", (1,), (1,)),
        ("max_tasks_per_worker", "max_tasks_per_child", 1, 1),
        ("start_method", "mp_context", "spawn", multiprocessing.get_context("spawn")),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_both_names_of_one_option_is_a_type_error(
    name: str, alias: str, value: Any, alias_value: Any
) -> None:
    """Each option with two names refuses to be given under both, naming them."""
    kwargs = {"init": jobs.init_value} if name == "init_args" else {}
    with pytest.raises(TypeError, match=f"{name}= and {alias}= are the same option"):
        minipool.Pool(**kwargs, **{name: value, alias: alias_value})


def test_mp_context_must_be_a_context() -> None:
    """mp_context="spawn" (a string) says what to pass instead."""
    with pytest.raises(TypeError, match=r"mp_context must be a multiprocessing context"):
        minipool.Pool(1, mp_context="spawn")


def test_submit_refuses_a_non_callable(make_pool: MakePool) -> None:
    """submit(fn) with a fn that is not callable raises TypeError naming fn."""
    pool = make_pool(1)
    with pytest.raises(TypeError, match="fn"):
        pool.submit(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((42, [1]), {}, TypeError, "fn"),
        ((jobs.square,), {}, TypeError, "iterable"),
        ((jobs.square, 5), {}, TypeError, "argument 2"),
        ((jobs.add, [1], 5), {}, TypeError, "argument 3"),
        ((jobs.square, [1]), {"chunksize": 0}, ValueError, "chunksize"),
        ((jobs.square, [1]), {"chunksize": -3}, ValueError, "chunksize"),
        ((jobs.square, [1]), {"chunksize": 2.0}, ValueError, "chunksize"),
    ],
    ids=[
        "fn-not-callable",
        "no-iterable",
        "int-iterable",
        "second-iterable-int",
        "chunksize-0",
        "chunksize-negative",
        "chunksize-float",
    ],
)
def test_bad_map_arguments_raise_at_the_call(
    make_pool: MakePool,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    """map() checks its arguments when called, before anything is iterated."""
    pool = make_pool(1)
    with pytest.raises(error, match=match):
        pool.map(*args, **kwargs)
    assert pool.stats.submitted == 0


# ---- what importing minipool loads ----------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "not_loaded"),
    [
        ("import minipool", ["minipool._pool", "multiprocessing", "structlog", "cloudpickle"]),
        ("import minipool; minipool.Pool", ["structlog", "asyncio", "cloudpickle", "distributed"]),
    ],
)
def test_importing_minipool_loads_what_it_needs_only(statement: str, not_loaded: list[str]) -> None:
    """``import minipool`` loads its errors only (the rest on first use, see
    benchmarks/bench_import.py for the times); the pool class leaves out structlog (and
    asyncio with it), cloudpickle and Dask until a path needs them."""
    check = f"import sys; {statement}; print([m for m in {not_loaded!r} if m in sys.modules])"
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
