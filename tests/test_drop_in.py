"""minipool as a drop-in for ``concurrent.futures.ProcessPoolExecutor``: what scripts
written for the stdlib pool do, and what the Executor interface documents.

Dask's local schedulers, which take an executor, are tested in ``test_dask.py``
(importing dask changes how this process pickles exceptions; see conftest).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jobs
import pytest

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


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_a_fork_made_lock_for_a_pool_that_cannot_fork_is_a_clear_error(
    start_method: str,
) -> None:
    """A lock from the fork context, to a pool told to spawn: a TypeError at ``Pool()``
    that names the argument and both fixes; no worker is started."""
    lock = multiprocessing.get_context("fork").Lock()
    with pytest.raises(TypeError) as raised:
        minipool.Pool(1, start_method=start_method, init=jobs.init_keep_args, init_args=(3, lock))
    message = str(raised.value)
    assert "init_args[1] (Lock)" in message
    assert f"multiprocessing.get_context({start_method!r})" in message
    assert "start_method='fork'" in message


def test_init_args_that_do_not_pickle_fail_at_pool_unless_forked(make_pool: MakePool) -> None:
    """What cannot be pickled is a TypeError at ``Pool()`` naming it for a pool that
    spawns; a forked worker inherits it, as the stdlib's do."""
    unpicklable = jobs.UnpicklableError("x")
    with pytest.raises(TypeError, match=r"init_args\[0\] \(UnpicklableError\)"):
        minipool.Pool(1, start_method="spawn", init=jobs.init_keep_args, init_args=(unpicklable,))
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
