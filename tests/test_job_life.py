"""A job's life: pending until a worker starts it, running, then exactly one outcome.

Pending jobs can be cancelled wherever they wait, in the pool's queue or in a
worker's pipe, and then never run; running ones cannot, and ``stop()`` lets
them finish. No job waits behind another while a worker is idle, a finished
result is not held back by a slow job it was sent with, and ``task_timeout``
covers a job until its outcome is pickled.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, as_completed, wait
from functools import partial
from pathlib import Path
from typing import Any

import jobs
import pytest
from helpers import wait_for, wait_for_path

import minipool

MakePool = Callable[..., minipool.Pool]

# How long a test watches for something that must not happen (a queued job
# turning "running"): long enough for the pool to have done it if it were going to.
NEGATIVE_WAIT = 0.5


def _blocker(
    pool: minipool.Pool, tmp_path: Path, name: str = "blocker"
) -> tuple[Future[Any], Path]:
    """Submit a job that runs until the test creates the returned path; wait until it runs."""
    started, release = tmp_path / f"{name}-started", tmp_path / f"{name}-release"
    future = pool.submit(jobs.block_until_released, str(started), str(release), name)
    wait_for_path(started, timeout=30)
    return future, release


# ---- pending and running --------------------------------------------------------------


def test_a_job_queued_behind_a_running_one_is_pending(make_pool: MakePool, tmp_path: Path) -> None:
    """One worker busy: the next job is not running(), cancel() takes it back, it never runs."""
    pool = make_pool(1)
    blocker, release = _blocker(pool, tmp_path)
    queued = pool.submit(jobs.write_marker, str(tmp_path), "queued")
    assert not wait_for(queued.running, NEGATIVE_WAIT)
    assert queued.cancel()
    assert queued.cancelled()
    release.touch()
    assert blocker.result(timeout=30) == "blocker"
    pool.shutdown()
    assert not (tmp_path / "queued").exists()


def test_running_turns_true_when_the_worker_starts_the_job(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """running() is True once the job runs, and then cancel() refuses."""
    pool = make_pool(1)
    blocker, release = _blocker(pool, tmp_path)
    assert wait_for(blocker.running, timeout=30)
    assert not blocker.cancel()
    release.touch()
    assert blocker.result(timeout=30) == "blocker"
    assert not blocker.running()


def test_every_job_queued_at_a_busy_worker_can_be_cancelled(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """Jobs a busy worker holds in its pipe are still pending: each cancel() succeeds."""
    pool = make_pool(1)
    blocker, release = _blocker(pool, tmp_path)
    queued = [pool.submit(jobs.write_marker, str(tmp_path), f"job-{i}") for i in range(20)]
    assert all(future.cancel() for future in queued)
    release.touch()
    assert blocker.result(timeout=30) == "blocker"
    assert pool.submit(jobs.square, 3).result(timeout=30) == 9
    pool.shutdown()
    assert not list(tmp_path.glob("job-*"))
    assert pool.stats.completed == 2


def test_jobs_cancelled_at_a_busy_worker_do_not_hold_back_the_next(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """A worker skips the jobs cancelled while they waited in its pipe, and says nothing of
    them; the master must not count them as its work. Before, after fast jobs had let it
    hold many, it counted them until the worker's next outcome, which never came (nothing
    else was sent to it): the next job waited for ever."""
    pool = make_pool(1)
    # Fast jobs first: measured, they let the master queue many jobs at the worker.
    assert [f.result(timeout=30) for f in [pool.submit(jobs.square, x) for x in range(50)]] == [
        x * x for x in range(50)
    ]
    blocker, release = _blocker(pool, tmp_path)
    queued = [pool.submit(jobs.square, x) for x in range(5)]
    worker = pool._backend._workers[0]  # type: ignore[attr-defined]
    assert wait_for(lambda: len(worker.held) == 6, timeout=30)  # all in the worker's pipe
    assert all(future.cancel() for future in queued)
    release.touch()
    assert blocker.result(timeout=30) == "blocker"
    assert pool.submit(jobs.square, 3).result(timeout=30) == 9


def test_a_worker_left_with_only_cancelled_jobs_takes_back_work_from_a_busy_one(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """Both workers run a long job, each with jobs queued behind it; the callers cancel
    those at the first. When its long job ends, the first worker is idle and must take
    the jobs still waiting behind the second's. Before, the jobs it had skipped, cancelled,
    made it look busy until its next outcome (none came): they waited for the long job."""
    pool = make_pool(2)
    warm = [pool.submit(jobs.square, x) for x in range(50)]  # measured: more may wait at each
    assert [future.result(timeout=30) for future in warm] == [x * x for x in range(50)]
    first, release_first = _blocker(pool, tmp_path, "first")
    second, release_second = _blocker(pool, tmp_path, "second")
    queued = [pool.submit(jobs.square, x) for x in range(6)]
    workers = pool._backend._workers  # type: ignore[attr-defined]
    assert wait_for(lambda: sum(len(worker.held) for worker in workers) == 8, timeout=30)
    at_first = next(worker for worker in workers if first in _receivers(worker))
    cancelled = [future for future in queued if future in _receivers(at_first)]
    waiting = [future for future in queued if future not in cancelled]
    assert cancelled and waiting
    assert all(future.cancel() for future in cancelled)
    release_first.touch()
    assert first.result(timeout=30) == "first"
    try:
        assert [future.result(timeout=10) for future in waiting] == [
            queued.index(future) ** 2 for future in waiting
        ]
        assert not second.done()
    finally:
        release_second.touch()
    assert second.result(timeout=30) == "second"


def _receivers(worker: Any) -> list[Any]:
    return [held.task.receiver.future for held in worker.held]


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Switch threads every microsecond, so that races between threads show within a few runs."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.usefixtures("frequent_thread_switches")
@pytest.mark.parametrize("run", range(5))
def test_cancel_races_the_worker_and_one_of_them_wins(
    make_pool: MakePool, tmp_path: Path, run: int
) -> None:
    """Cancelling jobs while workers start them: a cancelled job never ran, every other ran once.

    Each round is a fresh pool; a cancel that raced the master's sending of
    the job (and let it run, cancelled) showed in about one round in thirty.
    """
    for round_ in range(8):
        directory = tmp_path / f"round-{round_}"
        directory.mkdir()
        pool = make_pool(2)
        futures = []
        for index in range(300):
            futures.append(pool.submit(jobs.write_marker, str(directory), f"job-{index}"))
            if index % 3 == 0:
                futures[index // 2].cancel()
        pool.shutdown()
        cancelled = 0
        for index, future in enumerate(futures):
            ran = (directory / f"job-{index}").exists()
            assert ran is not future.cancelled(), (round_, index)
            if ran:
                assert future.result(timeout=0) == f"job-{index}"
            cancelled += future.cancelled()
        assert pool.stats.completed == len(futures) - cancelled


_ENDINGS = {
    "result": (jobs.block_until_released, None),
    "its error": (jobs.block_then_raise, ValueError),
    "a crash": (jobs.block_then_kill, minipool.WorkerCrashed),
}


@pytest.mark.usefixtures("frequent_thread_switches")
@pytest.mark.parametrize("ending", list(_ENDINGS))
def test_a_job_that_ran_cannot_be_cancelled_as_it_ends(
    make_pool: MakePool, tmp_path: Path, ending: str
) -> None:
    """cancel() called without pause while a started job ends never succeeds: the job
    keeps its own outcome (the pool had let go of where the job waited just before
    it settled the outcome, and a cancel in between won)."""
    fn, error = _ENDINGS[ending]
    pool = make_pool(1)
    for round_ in range(10):
        started, release = tmp_path / f"started-{round_}", tmp_path / f"release-{round_}"
        future = pool.submit(fn, str(started), str(release))
        wait_for_path(started, timeout=30)
        release.touch()
        while not future.done():
            if future.cancel():
                pytest.fail(f"round {round_}: cancel() took back a job that ran")
        if error is None:
            assert future.result(timeout=0) is None
        else:
            with pytest.raises(error):
                future.result(timeout=0)


def test_a_job_sent_to_a_starting_worker_is_pending(make_pool: MakePool, tmp_path: Path) -> None:
    """While init still runs, a submitted job is pending; stop() cancels it, and wait() sees it."""
    release = tmp_path / "release"
    pool = make_pool(1, init=jobs.init_blocks_until_released, init_args=(str(release),))
    future = pool.submit(jobs.write_marker, str(tmp_path), "never")
    assert not wait_for(future.running, NEGATIVE_WAIT)
    pool.stop()
    done, _ = wait([future], timeout=30)
    assert done == {future}
    assert future.cancelled()
    release.touch()
    pool.shutdown()
    assert not (tmp_path / "never").exists()


def test_stop_lets_the_running_job_finish_and_cancels_the_queued_one(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """stop(): the running job keeps its result; the queued one is cancelled (cancelled() True)."""
    pool = make_pool(1)
    blocker, release = _blocker(pool, tmp_path)
    queued = pool.submit(jobs.write_marker, str(tmp_path), "queued")
    pool.stop()
    assert wait([queued], timeout=30).done == {queued}
    assert queued.cancelled()
    assert not blocker.done()
    release.touch()
    assert blocker.result(timeout=30) == "blocker"
    assert not blocker.cancelled()
    assert [future for future in as_completed([blocker, queued], timeout=30)]
    pool.shutdown()
    assert not (tmp_path / "queued").exists()


def test_cancelled_jobs_are_seen_by_wait_and_as_completed(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """A job cancelled while it waits wakes concurrent.futures.wait and as_completed at once."""
    pool = make_pool(1)
    blocker, release = _blocker(pool, tmp_path)
    queued = [pool.submit(jobs.square, x) for x in range(3)]
    seen: list[Any] = []
    waiter = threading.Thread(target=lambda: seen.append(wait(queued, return_when=FIRST_COMPLETED)))
    waiter.start()
    queued[1].cancel()
    waiter.join(timeout=30)
    assert seen and seen[0].done == {queued[1]}
    assert next(as_completed(queued[1:2], timeout=30)) is queued[1]
    release.touch()
    assert [queued[i].result(timeout=30) for i in (0, 2)] == [0, 4]
    assert blocker.result(timeout=30) == "blocker"


@pytest.mark.parametrize("how", ["stop", "shutdown-cancel-futures"])
def test_jobs_the_pool_cancels_reach_waiters_already_waiting(
    make_pool: MakePool, tmp_path: Path, how: str
) -> None:
    """``as_completed()`` and ``wait()``, waiting before ``stop()`` or
    ``shutdown(cancel_futures=True)``, see every job it cancels, at once: the stdlib pool
    misses them (gh-87893), and so did minipool."""
    pool = make_pool(1)
    blocker, release = _blocker(pool, tmp_path)
    queued = [pool.submit(jobs.square, x) for x in range(10)]
    completed: list[Any] = []
    waited: list[Any] = []
    waiters = [
        threading.Thread(target=lambda: completed.extend(as_completed(queued, timeout=30))),
        threading.Thread(target=lambda: waited.append(wait(queued, timeout=30))),
    ]
    for waiter in waiters:
        waiter.start()
    if how == "stop":
        pool.stop()
    else:
        pool.shutdown(wait=False, cancel_futures=True)
    for waiter in waiters:
        waiter.join(timeout=30)
    assert not blocker.done()  # the waiters did not wait for it
    assert sorted(map(id, completed)) == sorted(map(id, queued))
    assert waited[0].done == set(queued) and not waited[0].not_done
    assert all(future.cancelled() for future in queued)
    release.touch()
    assert blocker.result(timeout=30) == "blocker"


# ---- no job waits behind another while a worker is idle ---------------------------------


@pytest.mark.parametrize("task_timeout", [None, 60.0], ids=["no-timeout", "timeout-60"])
def test_short_jobs_do_not_wait_behind_a_long_one(
    make_pool: MakePool, tmp_path: Path, task_timeout: float | None
) -> None:
    """2 workers, a job that hangs, then 30 short ones: all 30 finish while it still runs."""
    pool = make_pool(2, task_timeout=task_timeout)
    assert list(pool.map(jobs.square, range(4), chunksize=1)) == [0, 1, 4, 9]  # workers up
    started, release = tmp_path / "started", tmp_path / "release"
    hanging = pool.submit(jobs.block_until_released, str(started), str(release), "long")
    short = [pool.submit(jobs.sleep_then_return, 0.05, x) for x in range(30)]
    try:
        not_done = wait(short, timeout=15).not_done
        assert not not_done, f"{len(not_done)} short jobs still waiting behind the long one"
        assert not hanging.done()
    finally:
        release.touch()
    assert [future.result(timeout=30) for future in short] == list(range(30))
    assert hanging.result(timeout=30) == "long"


def test_an_unordered_map_yields_short_results_while_a_long_job_runs(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """map(ordered=False) over one job that hangs and 30 short ones: the 30 come out first."""
    pool = make_pool(2)
    started, release = tmp_path / "started", tmp_path / "release"
    job = partial(jobs.block_on_zero_else_sleep, str(started), str(release), 0.05)
    results = pool.map(job, range(31), ordered=False, timeout=20)
    try:
        first = [next(results) for _ in range(30)]
    finally:
        release.touch()
    assert sorted(first) == list(range(1, 31))
    assert list(results) == [0]


@pytest.mark.parametrize("chunksize", [None, 3], ids=["auto-chunks", "one-chunk"])
@pytest.mark.parametrize("run", range(6))
def test_a_finished_result_is_not_held_behind_a_slow_job(
    make_pool: MakePool, tmp_path: Path, chunksize: int | None, run: int
) -> None:
    """map over [0, 0, slow], fresh pool: both quick results come out while the slow one runs."""
    pool = make_pool(2)
    started, release = tmp_path / "started", tmp_path / "release"
    job = partial(jobs.block_on_negative, str(started), str(release))
    results = pool.map(job, [0, 0, -1], chunksize=chunksize, timeout=15)
    try:
        assert [next(results), next(results)] == [0, 0]
    finally:
        release.touch()
    assert list(results) == [-1]


# ---- task_timeout covers the job until its outcome is pickled -----------------------------


def test_task_timeout_covers_pickling_the_result(make_pool: MakePool, tmp_path: Path) -> None:
    """A result that takes long to pickle is a job that runs long: TaskTimeout at the deadline."""
    pool = make_pool(1, task_timeout=1.0)
    started, release = tmp_path / "started", tmp_path / "release"
    future = pool.submit(jobs.return_slow_to_pickle, str(started), str(release))
    began = time.monotonic()
    with pytest.raises(minipool.TaskTimeout):
        future.result(timeout=30)
    assert started.exists()
    assert time.monotonic() - began < 10
    assert pool.submit(jobs.square, 5).result(timeout=30) == 25


def test_a_stopped_map_with_streamed_results_keeps_them(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """stop() in the middle of a chunk: the results it sent stay, the job in hand finishes,
    the jobs after it never start."""
    pool = make_pool(1)
    started, release = tmp_path / "started", tmp_path / "release"
    job = partial(jobs.block_on_negative, str(started), str(release))
    results = pool.map(job, [1, 2, -1, 3, 4], chunksize=5, return_exceptions=True, timeout=20)
    assert [next(results), next(results)] == [1, 2]
    pool.stop()
    release.touch()
    rest = list(results)
    assert rest[0] == -1
    assert [type(outcome) for outcome in rest[1:]] == [CancelledError, CancelledError]
