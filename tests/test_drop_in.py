"""minipool as a drop-in for ``concurrent.futures.ProcessPoolExecutor``: what scripts
written for the stdlib pool do, and what the Executor interface documents.

Dask's local schedulers, which take an executor, are tested in ``test_dask.py``
(importing dask changes how this process pickles exceptions; see conftest).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    Executor,
    Future,
    ProcessPoolExecutor,
    as_completed,
    wait,
)
from concurrent.futures import TimeoutError as FuturesTimeoutError  # TimeoutError from 3.11
from pathlib import Path
from typing import Any

import jobs
import pytest
from helpers import wait_for, wait_for_path

import minipool

MakePool = Callable[..., minipool.Pool]


# ---- init_args: multiprocessing's primitives --------------------------------------------


def _primitives(ctx: Any) -> tuple[Any, ...]:
    """One of each primitive the contract names, made by ``ctx``, in the order
    ``jobs.use_primitives`` reads them."""
    return (
        ctx.Queue(),
        ctx.SimpleQueue(),
        ctx.Lock(),
        ctx.RLock(),
        ctx.Event(),
        ctx.Semaphore(2),
        ctx.Value("i", 0),
        ctx.Array("i", 6),
    )


def _check_primitives_used(primitives: tuple[Any, ...], jobs_run: int) -> None:
    queue, simple_queue, _, _, event, _, value, array = primitives
    assert sorted(queue.get(timeout=10) for _ in range(jobs_run)) == list(range(jobs_run))
    assert (
        sorted(simple_queue.get() for _ in range(jobs_run)) == [-x for x in range(jobs_run)][::-1]
    )
    assert event.is_set()
    assert value.value == jobs_run
    assert list(array)[:jobs_run] == [x * x for x in range(jobs_run)]
    # Close the caller's ends: a Queue closes them once its feeder thread, which the
    # first put() starts, sees close().
    queue.put(None)
    assert queue.get(timeout=10) is None
    queue.close()
    queue.join_thread()
    simple_queue.close()


def test_init_args_carry_multiprocessing_primitives(make_pool: MakePool, start_method: str) -> None:
    """Queue, SimpleQueue, Lock, RLock, Event, Semaphore, Value and Array made by the
    pool's context reach init under every start method, in the first workers and in
    those that replace them (``max_tasks_per_worker=1``: one per job)."""
    primitives = _primitives(multiprocessing.get_context(start_method))
    pool = make_pool(
        start_method=start_method,
        init=jobs.init_keep_args,
        init_args=primitives,
        max_tasks_per_worker=1,
    )
    assert list(pool.map(jobs.use_primitives, range(6), chunksize=1)) == list(range(6))
    assert pool.stats.worker_restarts >= 4
    _check_primitives_used(primitives, 6)


def test_primitives_made_the_default_way_work_with_the_default_start_method(
    make_pool: MakePool,
) -> None:
    """``multiprocessing.Queue()`` and the rest, made by the default context (fork before
    Python 3.14 on Linux, which only forked processes can share), in a pool whose start
    method was not chosen: the pool forks its workers, and they work."""
    primitives = _primitives(multiprocessing)
    pool = make_pool(start_method=None, init=jobs.init_keep_args, init_args=primitives)
    assert list(pool.map(jobs.use_primitives, range(3), chunksize=1)) == list(range(3))
    _check_primitives_used(primitives, 3)


def test_the_logging_cookbooks_queue_handler_recipe_works(
    make_pool: MakePool, start_method: str
) -> None:
    """The logging cookbook's recipe for many processes: ``initializer`` adds a
    ``QueueHandler`` on the queue it is given; each worker's records reach the caller
    through it."""
    queue = multiprocessing.get_context(start_method).Queue()
    pool = make_pool(
        start_method=start_method, initializer=jobs.init_queue_handler, initargs=(queue,)
    )
    pool.submit(jobs.log_to_cookbook, "from a worker").result(timeout=30)
    record = queue.get(timeout=30)
    assert (record.name, record.getMessage()) == ("cookbook", "from a worker")
    queue.put(None)  # closes the caller's ends, as in _check_primitives_used
    assert queue.get(timeout=10) is None
    queue.close()
    queue.join_thread()


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_a_fork_made_lock_for_a_pool_that_cannot_fork_is_a_clear_error(
    make_pool: MakePool, start_method: str
) -> None:
    """A lock from the fork context, to a pool told to spawn: a TypeError at ``Pool()``
    that names the argument and both fixes; no worker is started."""
    lock = multiprocessing.get_context("fork").Lock()
    with pytest.raises(TypeError) as raised:
        make_pool(1, start_method=start_method, init=jobs.init_keep_args, init_args=(3, lock))
    message = str(raised.value)
    assert "init_args[1] (Lock)" in message
    assert f"multiprocessing.get_context({start_method!r})" in message
    assert "start_method='fork'" in message


def test_init_args_that_do_not_pickle_fail_at_pool_unless_forked(make_pool: MakePool) -> None:
    """What cannot be pickled is a TypeError at ``Pool()`` naming it for a pool that
    spawns; a forked worker inherits it, as the stdlib's do."""
    unpicklable = jobs.UnpicklableError("x")
    with pytest.raises(TypeError, match=r"init_args\[0\] \(UnpicklableError\)"):
        make_pool(1, start_method="spawn", init=jobs.init_keep_args, init_args=(unpicklable,))
    pool = make_pool(1, init=jobs.init_keep_args, init_args=(unpicklable,))
    assert pool.submit(jobs.state_type_names).result(timeout=30) == ["UnpicklableError"]


def test_a_worker_that_cannot_be_replaced_breaks_the_pool(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """init_args that stop pickling between two worker starts: the replacement cannot
    start, so the jobs waiting fail with a PoolError that says so, instead of hanging."""
    broken = tmp_path / "broken"
    argument = jobs.PicklesUntil(str(broken))
    pool = make_pool(
        1,
        start_method="spawn",
        init=jobs.init_keep_args,
        init_args=(argument,),
        max_tasks_per_worker=1,
    )
    assert pool.submit(jobs.square, 2).result(timeout=30) == 4
    broken.touch()
    with pytest.raises(minipool.PoolError, match="could not start a worker in place of worker 0"):
        pool.submit(jobs.square, 3).result(timeout=30)


# ---- the Executor interface, as concurrent.futures documents it --------------------------
# Each test runs on minipool.Pool and on ProcessPoolExecutor, with the same assertions:
# what holds for the stdlib's pool holds for minipool's.


@pytest.fixture(params=["minipool", "ProcessPoolExecutor"])
def executor(request: pytest.FixtureRequest) -> Executor:
    """A two-worker pool of each kind (fork), shut down when the test ends; minipool's
    checked for leaks (the stdlib's keeps pipes open until it is collected)."""
    if request.param == "minipool":
        make_pool: MakePool = request.getfixturevalue("make_pool")
        return make_pool(2)
    stdlib = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
    request.addfinalizer(lambda: stdlib.shutdown(wait=True, cancel_futures=True))
    return stdlib


class Blocker:
    """A job that blocks until the test releases it (``release()``), and knows when it started."""

    def __init__(self, directory: Path, name: str = "blocker") -> None:
        self.started = directory / f"{name}.started"
        self.released = directory / f"{name}.released"

    def submit(self, executor: Executor, value: Any = None) -> Future[Any]:
        return executor.submit(
            jobs.block_until_released, str(self.started), str(self.released), value
        )

    def wait_started(self) -> None:
        wait_for_path(self.started, 30)

    def release(self) -> None:
        self.released.touch()


def test_submit_gives_a_future_with_the_result_or_the_exception(executor: Executor) -> None:
    """``result()`` returns the job's value; a job that raised has that exception as
    ``exception()``, re-raised by ``result()``."""
    assert executor.submit(jobs.add, 2, 3).result(timeout=30) == 5
    failed = executor.submit(jobs.raise_value_error, "no")
    assert isinstance(failed.exception(timeout=30), ValueError)
    with pytest.raises(ValueError, match="no"):
        failed.result()


def test_map_zips_its_iterables_and_raises_each_error_in_its_place(executor: Executor) -> None:
    """Results in input order, over the shortest iterable; a job's exception comes out
    of ``next()`` at its position, after the results before it."""
    assert list(executor.map(jobs.add, [1, 2, 3], [10, 20, 30, 40])) == [11, 22, 33]
    results = executor.map(jobs.fail_on_odd, [0, 2, 3, 4])
    assert [next(results), next(results)] == [0, 2]
    with pytest.raises(ValueError, match="odd: 3"):
        next(results)


def test_map_timeout_raises_timeout_error_when_a_result_is_late(
    executor: Executor, tmp_path: Path
) -> None:
    """``map(timeout=)`` counts from the call: a result not there by then is a TimeoutError."""
    blocker = Blocker(tmp_path)
    try:
        results = executor.map(
            jobs.block_until_released, [str(blocker.started)], [str(blocker.released)], timeout=0.5
        )
        with pytest.raises(FuturesTimeoutError):
            next(results)
    finally:
        blocker.release()


def test_wait_returns_when_asked(executor: Executor, tmp_path: Path) -> None:
    """``wait``: FIRST_COMPLETED returns with the quick job done and the blocked one not;
    FIRST_EXCEPTION with the failure; ALL_COMPLETED once both are done."""
    blocker = Blocker(tmp_path)
    blocked = blocker.submit(executor, "late")
    quick = executor.submit(jobs.square, 3)
    done, not_done = wait([blocked, quick], timeout=30, return_when=FIRST_COMPLETED)
    assert (done, not_done) == ({quick}, {blocked})
    failed = executor.submit(jobs.raise_value_error, "x")
    done, not_done = wait([blocked, failed], timeout=30, return_when=FIRST_EXCEPTION)
    assert failed in done and blocked in not_done
    blocker.release()
    done, not_done = wait([blocked, quick, failed], timeout=30, return_when=ALL_COMPLETED)
    assert not not_done and blocked.result() == "late"


def test_as_completed_yields_each_future_once_and_times_out(
    executor: Executor, tmp_path: Path
) -> None:
    """``as_completed`` yields futures as they finish, each once; one still running at
    its timeout is a TimeoutError."""
    futures = [executor.submit(jobs.square, x) for x in range(6)]
    assert sorted(f.result() for f in as_completed(futures, timeout=30)) == [0, 1, 4, 9, 16, 25]
    blocker = Blocker(tmp_path)
    blocked = blocker.submit(executor)
    try:
        with pytest.raises(FuturesTimeoutError):
            list(as_completed([blocked], timeout=0.5))
    finally:
        blocker.release()


def test_shutdown_cancel_futures_cancels_the_jobs_not_started(
    executor: Executor, tmp_path: Path
) -> None:
    """``shutdown(cancel_futures=True)``: jobs running finish; those waiting are cancelled,
    but for a few that start meanwhile (the stdlib's call queue holds ``max_workers + 1``
    past cancelling; minipool cancels in its master thread, as the workers go on);
    none is lost."""
    blockers = [Blocker(tmp_path, f"b{n}") for n in range(2)]
    running = [blocker.submit(executor, n) for n, blocker in enumerate(blockers)]
    for blocker in blockers:
        blocker.wait_started()
    waiting = [executor.submit(jobs.square, x) for x in range(8)]
    executor.shutdown(wait=False, cancel_futures=True)
    for blocker in blockers:
        blocker.release()
    assert [future.result(timeout=30) for future in running] == [0, 1]
    # Not wait(): the stdlib's wait() does not count the futures its shutdown cancels.
    assert wait_for(lambda: all(future.done() for future in waiting), timeout=30)
    cancelled = [future for future in waiting if future.cancelled()]
    assert len(cancelled) >= len(waiting) - (2 + 1)
    assert all(f.result() == x * x for x, f in enumerate(waiting) if not f.cancelled())
    with pytest.raises(RuntimeError):
        executor.submit(jobs.square, 1)


def test_done_callbacks_run_once_with_the_future(executor: Executor) -> None:
    """A callback added before the job ends runs once with its future; one added after
    runs at once, in the thread that adds it."""
    calls: list[tuple[Future[Any], threading.Thread]] = []
    future = executor.submit(jobs.square, 4)
    future.add_done_callback(lambda f: calls.append((f, threading.current_thread())))
    assert future.result(timeout=30) == 16
    assert wait_for(lambda: len(calls) == 1, timeout=30)
    future.add_done_callback(lambda f: calls.append((f, threading.current_thread())))
    assert [f for f, _ in calls] == [future, future]
    assert calls[1][1] is threading.current_thread()


def test_a_running_job_cannot_be_cancelled(executor: Executor, tmp_path: Path) -> None:
    """``running()`` once a worker started it; ``cancel()`` then returns False and it
    delivers its result."""
    blocker = Blocker(tmp_path)
    future = blocker.submit(executor, "done")
    blocker.wait_started()
    assert wait_for(future.running, timeout=30)
    assert not future.cancel()
    blocker.release()
    assert future.result(timeout=30) == "done"


def test_asyncio_run_in_executor_awaits_jobs(executor: Executor) -> None:
    """``loop.run_in_executor(pool, fn, *args)``, gathered, as asyncio's docs show."""

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        return list(
            await asyncio.gather(
                *(loop.run_in_executor(executor, jobs.square, x) for x in range(5))
            )
        )

    assert asyncio.run(main()) == [0, 1, 4, 9, 16]


def test_the_with_block_waits_for_every_job(make_pool: MakePool) -> None:
    """Leaving ``with`` shuts the pool down once every submitted job is done."""
    pool = make_pool(2)
    with pool:
        futures = [pool.submit(jobs.square, x) for x in range(20)]
    assert all(future.done() for future in futures)
    assert [future.result() for future in futures] == [x * x for x in range(20)]
