"""retries: a job that raised, crashed its worker or timed out runs again before it fails."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jobs
import pytest

import minipool

MakePool = Callable[..., minipool.Pool]


@pytest.mark.parametrize("how", ["raise", "kill", "hang"])
def test_a_job_that_fails_then_succeeds_gets_its_result(
    make_pool: MakePool, tmp_path: Path, how: str
) -> None:
    """Failing twice (raising, SIGKILLing its worker, overrunning), retries=2 still succeeds."""
    pool = make_pool(2, retries=2, task_timeout=0.5)
    future = pool.submit(jobs.fail_first_attempts, str(tmp_path), "job", 2, how)
    assert future.result(timeout=30) == 3
    stats = pool.stats
    assert stats.retried == 2
    assert stats.failed == 0
    assert stats.worker_restarts == (0 if how == "raise" else 2)


def test_the_last_error_says_how_many_attempts_were_made(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """A job failing on every attempt raises its own last error, noting the attempts."""
    pool = make_pool(2, retries=2)
    future = pool.submit(jobs.fail_first_attempts, str(tmp_path), "job", 99, "raise")
    with pytest.raises(ValueError, match="attempt 3 of job failed") as info:
        future.result(timeout=30)
    assert any("3 attempts" in note for note in getattr(info.value, "__notes__", []))
    assert len((tmp_path / "job").read_text()) == 3
    assert pool.stats.retried == 2
    assert pool.stats.failed == 1


def test_a_crash_on_every_attempt_ends_in_worker_crashed(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """A job that kills its worker every time gets WorkerCrashed after 1 + retries runs."""
    pool = make_pool(2, retries=1)
    future = pool.submit(jobs.fail_first_attempts, str(tmp_path), "job", 99, "kill")
    with pytest.raises(minipool.WorkerCrashed, match="SIGKILL"):
        future.result(timeout=30)
    assert len((tmp_path / "job").read_text()) == 2
    assert pool.submit(jobs.square, 5).result(timeout=30) == 25


def test_map_retries_each_failed_item_alone(make_pool: MakePool, tmp_path: Path) -> None:
    """In a map, items that fail once are retried; every result comes back in order."""
    pool = make_pool(2, retries=1)
    keys = [f"item-{i}" for i in range(20)]
    failures = [i % 2 for i in range(20)]  # odd items fail on their first attempt
    got = list(
        pool.map(
            jobs.fail_first_attempts,
            [str(tmp_path)] * 20,
            keys,
            failures,
            ["raise"] * 20,
            chunksize=5,
        )
    )
    assert got == [1 + i % 2 for i in range(20)]
    assert pool.stats.retried == 10


def test_without_retries_nothing_runs_twice(make_pool: MakePool, tmp_path: Path) -> None:
    """retries=0 (the default): a failing job runs once and fails without a note."""
    pool = make_pool(1)
    future = pool.submit(jobs.fail_first_attempts, str(tmp_path), "job", 1, "raise")
    with pytest.raises(ValueError) as info:
        future.result(timeout=30)
    assert not getattr(info.value, "__notes__", [])
    assert len((tmp_path / "job").read_text()) == 1
    assert pool.stats.retried == 0


@pytest.mark.parametrize("value", [-1, 1.5, True, "2"])
def test_bad_retries_is_refused(value: object) -> None:
    """retries must be a whole number, 0 or more; the message names it."""
    with pytest.raises(ValueError, match="retries"):
        minipool.Pool(1, retries=value)  # type: ignore[arg-type]
