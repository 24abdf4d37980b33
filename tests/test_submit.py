"""``Pool.submit``: results, arguments, callables of every kind, threads, asyncio, cancellation."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, wait
from pathlib import Path

import jobs
import pytest
from helpers import wait_for, wait_for_path

import minipool

MakePool = Callable[..., minipool.Pool]


def test_submit_returns_the_result(make_pool: MakePool, start_method: str) -> None:
    """A submitted job's result comes back through its Future under every start method."""
    pool = make_pool(start_method=start_method)
    assert pool.submit(jobs.add, 2, 3).result(timeout=30) == 5
    assert pool.submit(jobs.square, 12).result(timeout=30) == 144


def test_jobs_run_in_worker_processes(make_pool: MakePool, start_method: str) -> None:
    """Jobs run in other processes, never in the caller."""
    pool = make_pool(start_method=start_method)
    pids = {future.result(timeout=30) for future in [pool.submit(jobs.getpid) for _ in range(10)]}
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= pool.workers


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (lambda x: x + 1, 11),
        (jobs.make_closure(5), 15),
        (jobs.Multiplier(3), 30),
        (functools.partial(jobs.add, 100), 110),
    ],
    ids=["lambda", "closure", "callable-object", "partial"],
)
def test_lambdas_closures_and_callable_objects_run(
    make_pool: MakePool, start_method: str, fn: Callable[[int], int], expected: int
) -> None:
    """Functions that plain pickle cannot send (lambdas, closures) work, as do callable objects."""
    pool = make_pool(1, start_method=start_method)
    assert pool.submit(fn, 10).result(timeout=30) == expected
    assert list(pool.map(fn, [10, 10])) == [expected, expected]


def test_lambdas_and_closures_travel_as_arguments(make_pool: MakePool, start_method: str) -> None:
    """An argument only cloudpickle can carry (a lambda, a closure), positional, keyword
    or a map item, reaches the job as the function does."""
    pool = make_pool(1, start_method=start_method)
    assert pool.submit(jobs.call, lambda x: x * 2, 21).result(timeout=30) == 42
    assert pool.submit(jobs.call, fn=jobs.make_closure(5), x=1).result(timeout=30) == 6
    offsets = [jobs.make_closure(offset) for offset in range(3)]
    assert list(pool.map(jobs.call, offsets, [10] * 3)) == [10, 11, 12]
    assert list(pool.map(jobs.call, [lambda: "a", lambda: "b"])) == ["a", "b"]


def test_a_job_may_return_a_closure(make_pool: MakePool, start_method: str) -> None:
    """A result pickle cannot carry (a closure) travels with cloudpickle instead."""
    pool = make_pool(start_method=start_method)
    shifted = pool.submit(jobs.return_closure, 10).result(timeout=30)
    assert shifted(5) == 15


def test_kwargs_named_fn_and_self_reach_the_job(make_pool: MakePool) -> None:
    """Keyword arguments named like submit's own parameters go to the job untouched."""
    pool = make_pool(1)
    result = pool.submit(jobs.echo, 1, fn="f", self="s", x=2).result(timeout=30)
    assert result == ((1,), {"fn": "f", "self": "s", "x": 2})


def test_job_exception_keeps_its_type_and_worker_traceback(make_pool: MakePool) -> None:
    """A job's exception is re-raised with its type; its cause holds the worker traceback."""
    pool = make_pool(1)
    future = pool.submit(jobs.raise_value_error, "bad value 42")
    with pytest.raises(ValueError, match="bad value 42") as info:
        future.result(timeout=30)
    cause = info.value.__cause__
    assert isinstance(cause, minipool.RemoteTraceback)
    assert "raise_value_error" in str(cause)
    assert "ValueError: bad value 42" in cause.tb
    # It starts at the job's own frame: the frames of minipool that ran it are not the job's.
    first_frame = cause.tb.splitlines()[1]
    assert first_frame.startswith('  File "') and "jobs.py" in first_frame, cause.tb


def test_large_arguments_and_results_cross_both_ways(make_pool: MakePool) -> None:
    """Payloads far larger than a pipe buffer travel both ways at once without a deadlock."""
    pool = make_pool()
    payloads = [bytes([i]) * (8 << 20) for i in range(6)]
    futures = [pool.submit(jobs.echo, payload) for payload in payloads]
    assert [future.result(timeout=30) for future in futures] == [((p,), {}) for p in payloads]


def test_unpicklable_argument_fails_at_submit(make_pool: MakePool) -> None:
    """An argument that cannot be pickled raises TypeError from submit itself."""
    pool = make_pool(1)
    with pytest.raises(TypeError, match="pickl") as info:
        pool.submit(jobs.echo, threading.Lock())
    assert "echo" in str(info.value)
    assert pool.submit(jobs.square, 4).result(timeout=30) == 16


def test_many_threads_submit_at_once(make_pool: MakePool) -> None:
    """8 threads submitting 500 jobs each all get their own, correct results."""
    pool = make_pool()
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def submit_many(thread: int) -> None:
        try:
            futures = [pool.submit(jobs.add, thread * 1000, i) for i in range(500)]
            results[thread] = [future.result(timeout=30) for future in futures]
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=submit_many, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=50)
    assert not errors
    assert results == {t: [t * 1000 + i for i in range(500)] for t in range(8)}
    assert pool.stats.submitted == 4000


def test_cancelled_pending_futures_never_run(make_pool: MakePool, tmp_path: Path) -> None:
    """Futures cancelled before a worker starts them report cancelled and their job never runs."""
    pool = make_pool(1)
    started, release = tmp_path / "started", tmp_path / "release"
    blocker = pool.submit(jobs.block_until_released, str(started), str(release), "first")
    wait_for_path(started, timeout=30)
    futures = [pool.submit(jobs.write_marker, str(tmp_path), f"job-{i}") for i in range(8)]
    # Some of them wait in the worker's pipe: they are pending all the same.
    cancelled = [future for future in futures[::2] if future.cancel()]
    assert len(cancelled) == 4
    release.touch()
    assert blocker.result(timeout=30) == "first"
    kept = [future for future in futures if future not in cancelled]
    assert [future.result(timeout=30) for future in kept] == [
        f"job-{futures.index(future)}" for future in kept
    ]
    pool.shutdown()
    for index, future in enumerate(futures):
        ran = (tmp_path / f"job-{index}").exists()
        assert ran is (future not in cancelled)
        if future in cancelled:
            assert future.cancelled()
            with pytest.raises(CancelledError):
                future.result(timeout=0)


def test_run_in_executor(make_pool: MakePool) -> None:
    """The pool works as an asyncio executor through loop.run_in_executor."""
    pool = make_pool()

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        return list(
            await asyncio.gather(*(loop.run_in_executor(pool, jobs.square, x) for x in range(10)))
        )

    assert asyncio.run(main()) == [x * x for x in range(10)]


def test_stats_count_submitted_completed_and_failed(make_pool: MakePool) -> None:
    """stats counts every job submitted, completed and failed, and is a frozen snapshot."""
    pool = make_pool()
    futures = [pool.submit(jobs.fail_on_odd, x) for x in range(7)]
    wait(futures, timeout=30)
    assert [future.exception() is not None for future in futures] == [x % 2 == 1 for x in range(7)]
    pool.shutdown()
    stats = pool.stats
    assert (stats.submitted, stats.completed, stats.failed) == (7, 7, 3)
    assert stats.running == 0
    assert stats.worker_restarts == 0
    assert stats.retried == 0
    with pytest.raises(AttributeError):
        stats.completed = 0  # type: ignore[misc]
    assert pool.stats == stats


def test_stats_count_running_jobs(make_pool: MakePool, tmp_path: Path) -> None:
    """stats.running counts a job a worker is running, not one that waits behind it."""
    pool = make_pool(1)
    started, release = tmp_path / "started", tmp_path / "release"
    future = pool.submit(jobs.block_until_released, str(started), str(release))
    wait_for_path(started, timeout=30)
    queued = pool.submit(jobs.square, 2)
    stats = pool.stats
    assert (stats.submitted, stats.completed, stats.running) == (2, 0, 1)
    release.touch()
    future.result(timeout=30)
    assert queued.result(timeout=30) == 4
    assert wait_for(lambda: pool.stats.running == 0, timeout=30)


def test_stats_snapshot_does_not_change(make_pool: MakePool) -> None:
    """A stats object taken earlier keeps its numbers while the pool goes on."""
    pool = make_pool()
    pool.submit(jobs.square, 1).result(timeout=30)
    before = pool.stats
    assert before.workers_alive == 2
    pool.submit(jobs.square, 2).result(timeout=30)
    assert before.submitted == 1
    assert wait_for(lambda: pool.stats.completed == 2, timeout=30)


def test_stats_count_a_job_once_its_future_is_done(make_pool: MakePool, tmp_path: Path) -> None:
    """By the time a job's Future is done (its callbacks run), stats counts the job as completed."""
    pool = make_pool(1)
    started, release = tmp_path / "started", tmp_path / "release"
    seen: list[minipool.PoolStats] = []
    future = pool.submit(jobs.block_until_released, str(started), str(release), "done")
    future.add_done_callback(lambda _: seen.append(pool.stats))
    release.touch()
    assert future.result(timeout=30) == "done"
    assert wait_for(lambda: seen, timeout=30)
    assert (seen[0].submitted, seen[0].completed) == (1, 1)
