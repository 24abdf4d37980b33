"""task_timeout: an overrunning job gets TaskTimeout, its worker is replaced, the rest run on."""

from __future__ import annotations

import time
from collections.abc import Callable

import jobs
import pytest

import minipool

MakePool = Callable[..., minipool.Pool]

TIMEOUT = 0.5


def test_overrunning_job_gets_task_timeout_soon_after_its_deadline(
    make_pool: MakePool, start_method: str
) -> None:
    """A job past task_timeout fails with TaskTimeout within about a second; the pool runs on."""
    pool = make_pool(start_method=start_method, task_timeout=TIMEOUT)
    assert pool.submit(jobs.square, 3).result(timeout=30) == 9  # workers are up
    began = time.monotonic()
    future = pool.submit(jobs.sleep_then_return, 60, "never")
    with pytest.raises(minipool.TaskTimeout, match=r"task_timeout=0\.5") as info:
        future.result(timeout=30)
    elapsed = time.monotonic() - began
    assert TIMEOUT <= elapsed < TIMEOUT + 1.0
    assert isinstance(info.value, TimeoutError)
    assert info.value.seconds == TIMEOUT
    assert info.value.job_id is not None
    assert pool.submit(jobs.square, 4).result(timeout=30) == 16
    assert pool.stats.worker_restarts == 1


def test_other_jobs_are_not_affected(make_pool: MakePool) -> None:
    """Jobs running beside an overrunning one, and queued behind it, all get their results."""
    pool = make_pool(2, task_timeout=TIMEOUT)
    slow = pool.submit(jobs.sleep_then_return, 60, "never")
    quick = [pool.submit(jobs.sleep_then_return, 0.01, x) for x in range(30)]
    assert [future.result(timeout=30) for future in quick] == list(range(30))
    with pytest.raises(minipool.TaskTimeout):
        slow.result(timeout=30)


def test_a_queued_job_has_not_started_its_clock(make_pool: MakePool) -> None:
    """One worker, task_timeout 1.5 s, two jobs of 0.9 s: both finish, though together 1.8 s."""
    pool = make_pool(1, task_timeout=1.5)
    futures = [pool.submit(jobs.sleep_then_return, 0.9, x) for x in range(2)]
    assert [future.result(timeout=30) for future in futures] == [0, 1]
    assert pool.stats.worker_restarts == 0


def test_map_item_that_overruns_fails_alone(make_pool: MakePool) -> None:
    """In a map, only the item that overran gets TaskTimeout."""
    pool = make_pool(2, task_timeout=TIMEOUT)
    delays = [0.0] * 10
    delays[4] = 60.0
    got = list(pool.map(jobs.sleep_then_return, delays, range(10), return_exceptions=True))
    assert isinstance(got[4], minipool.TaskTimeout)
    assert got[:4] + got[5:] == [0, 1, 2, 3, 5, 6, 7, 8, 9]


def test_map_can_set_its_own_task_timeout(make_pool: MakePool) -> None:
    """map(task_timeout=...) times this map's jobs out, on a pool that has no timeout."""
    pool = make_pool(2)
    delays = [0.0, 60.0, 0.0]
    got = list(
        pool.map(
            jobs.sleep_then_return, delays, range(3), task_timeout=TIMEOUT, return_exceptions=True
        )
    )
    assert isinstance(got[1], minipool.TaskTimeout)
    assert got[1].seconds == TIMEOUT
    assert (got[0], got[2]) == (0, 2)
    # The pool itself still has no timeout.
    assert pool.submit(jobs.sleep_then_return, 1.0, "slow").result(timeout=30) == "slow"


def test_map_task_timeout_replaces_the_pools(make_pool: MakePool) -> None:
    """A map may give its jobs longer than the pool's task_timeout."""
    pool = make_pool(1, task_timeout=TIMEOUT)
    assert list(pool.map(jobs.sleep_then_return, [1.0], ["slow"], task_timeout=5.0)) == ["slow"]
    with pytest.raises(minipool.TaskTimeout):
        pool.submit(jobs.sleep_then_return, 1.0, "too slow").result(timeout=30)


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-1.5, ValueError), ("1", TypeError), (True, TypeError)]
)
def test_bad_task_timeout_is_refused(value: object, error: type[Exception]) -> None:
    """task_timeout must be a positive number of seconds; the message names it."""
    with pytest.raises(error, match="task_timeout"):
        minipool.Pool(1, task_timeout=value)  # type: ignore[arg-type]
