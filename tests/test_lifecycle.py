"""A pool's life: per-worker init and teardown, recycling, stop() and shutdown()."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from pathlib import Path

import jobs
import pytest
from helpers import Snapshot, leaked_processes, wait_for, wait_for_path

import minipool

MakePool = Callable[..., minipool.Pool]

# A failing init is tried a few times in all (three, across workers) before the
# pool gives up: at most two workers are respawned for it.
MAX_INIT_RESPAWNS = 2


def _marker_counts(directory: Path, kind: str) -> dict[int, int]:
    """pid -> how many times that worker wrote its ``kind`` marker (see jobs.init_with_markers)."""
    return {
        int(path.name.split("-")[1]): len(path.read_text().splitlines())
        for path in directory.glob(f"{kind}-*")
    }


# ---- init and worker_state -------------------------------------------------------------


def test_init_state_is_visible_in_jobs(make_pool: MakePool, start_method: str) -> None:
    """What init returns is worker_state() in every job of that worker."""
    pool = make_pool(start_method=start_method, init=jobs.init_value, init_args=({"db": 1},))
    results = [pool.submit(jobs.read_state) for _ in range(6)]
    assert [future.result(timeout=30) for future in results] == [{"db": 1}] * 6


def test_worker_state_is_none_without_init(make_pool: MakePool) -> None:
    """Without init, worker_state() is None inside a job."""
    pool = make_pool(1)
    assert pool.submit(jobs.read_state).result(timeout=30) is None


def test_worker_state_outside_a_worker_raises() -> None:
    """worker_state() in the caller raises RuntimeError saying where it works."""
    with pytest.raises(RuntimeError, match="worker"):
        minipool.worker_state()


def test_stop_requested_is_false_in_the_caller_and_in_jobs(make_pool: MakePool) -> None:
    """stop_requested() is False in the caller, and in jobs of a pool not stopped."""
    assert minipool.stop_requested() is False
    pool = make_pool(1)
    assert pool.submit(jobs.stop_requested_now).result(timeout=30) is False


def test_generator_init_tears_down_once_per_worker(
    make_pool: MakePool, start_method: str, tmp_path: Path
) -> None:
    """A generator init yields the state, and its teardown runs once in each worker at shutdown."""
    pool = make_pool(start_method=start_method, init=jobs.init_with_markers, init_args=(tmp_path,))
    results = [pool.submit(jobs.state_pid) for _ in range(10)]
    pids = set()
    for future in results:
        state_pid, pid = future.result(timeout=30)
        assert state_pid == pid
        pids.add(pid)
    assert _marker_counts(tmp_path, "teardown") == {}
    pool.shutdown()
    inits = _marker_counts(tmp_path, "init")
    assert len(inits) == pool.workers
    assert pids <= set(inits)
    assert inits == dict.fromkeys(inits, 1)
    assert _marker_counts(tmp_path, "teardown") == inits


def test_recycled_workers_tear_down_too(make_pool: MakePool, tmp_path: Path) -> None:
    """With max_tasks_per_worker, every worker, recycled or new, inits and tears down once."""
    pool = make_pool(init=jobs.init_with_markers, init_args=(tmp_path,), max_tasks_per_worker=3)
    results = [pool.submit(jobs.square_and_pid, x) for x in range(20)]
    pids = [future.result(timeout=30)[1] for future in results]
    pool.shutdown()
    assert [future.result()[0] for future in results] == [x * x for x in range(20)]
    assert max(pids.count(pid) for pid in pids) <= 3
    inits = _marker_counts(tmp_path, "init")
    assert len(inits) >= 7  # 20 jobs, at most 3 per worker
    assert set(pids) <= set(inits)
    assert inits == dict.fromkeys(inits, 1)
    assert _marker_counts(tmp_path, "teardown") == inits
    assert pool.stats.worker_restarts >= 5


def test_recycling_applies_to_map_chunks(make_pool: MakePool) -> None:
    """max_tasks_per_worker counts jobs, not chunks: a map still recycles every 3 jobs."""
    pool = make_pool(max_tasks_per_worker=3)
    results = list(pool.map(jobs.square_and_pid, range(30), chunksize=10))
    assert [value for value, _ in results] == [x * x for x in range(30)]
    pids = [pid for _, pid in results]
    assert max(pids.count(pid) for pid in set(pids)) <= 3


# ---- init failures -------------------------------------------------------------------


def test_init_failure_breaks_the_pool_fast(
    make_pool: MakePool, start_method: str, tmp_path: Path
) -> None:
    """init raising fails queued jobs with InitError, init's exception as cause; no respawn."""
    release = tmp_path / "release"
    began = time.monotonic()
    pool = make_pool(
        start_method=start_method, init=jobs.init_raises, init_args=("no db", str(release))
    )
    futures = [pool.submit(jobs.square, x) for x in range(5)]
    release.touch()
    for future in futures:
        with pytest.raises(minipool.InitError, match="no db") as info:
            future.result(timeout=30)
        assert isinstance(info.value.__cause__, jobs.InitFailure)
        assert info.value.worker_id in range(pool.workers)
    assert "InitFailure" in str(info.value)
    with pytest.raises(minipool.InitError) as later:
        pool.submit(jobs.square, 1)
    assert isinstance(later.value.__cause__, jobs.InitFailure)
    pool.shutdown()
    assert time.monotonic() - began < 15
    stats = pool.stats
    assert stats.worker_restarts <= MAX_INIT_RESPAWNS
    assert stats.workers_alive == 0


def test_init_that_fails_once_is_tried_again(make_pool: MakePool, tmp_path: Path) -> None:
    """An init that fails on its first attempt only (a refused connection) leaves a working pool."""
    pool = make_pool(1, init=jobs.init_fails_first_time, init_args=(str(tmp_path / "tried"),))
    assert pool.submit(jobs.read_state).result(timeout=30) == "connected"
    assert pool.stats.worker_restarts == 1


def test_init_that_kills_its_process_breaks_the_pool(make_pool: MakePool, tmp_path: Path) -> None:
    """A worker that dies during init gives InitError naming its exit code, not a respawn loop."""
    release = tmp_path / "release"
    pool = make_pool(init=jobs.init_exits, init_args=(4, str(release)))
    future = pool.submit(jobs.square, 2)
    release.touch()
    with pytest.raises(minipool.InitError, match="code 4"):
        future.result(timeout=30)
    with pytest.raises(minipool.InitError):
        pool.submit(jobs.square, 3)
    pool.shutdown()
    assert pool.stats.worker_restarts <= MAX_INIT_RESPAWNS


@pytest.mark.parametrize("how", ["raises", "exits"])
def test_init_failure_of_a_worker_already_retired_breaks_the_pool(
    make_pool: MakePool, tmp_path: Path, how: str
) -> None:
    """With ``max_tasks_per_worker=1`` a starting worker is retired as soon as it is sent
    its one task; its init failing still counts as one, and the pool breaks instead of
    respawning workers forever."""
    release = tmp_path / "release"
    release.touch()
    init, init_args = {
        "raises": (jobs.init_raises, ("no db",)),
        "exits": (jobs.init_exits, (4, str(release))),
    }[how]
    pool = make_pool(2, init=init, init_args=init_args, max_tasks_per_worker=1)
    with pytest.raises(minipool.InitError):
        list(pool.map(jobs.square, range(4)))
    pool.shutdown()
    assert pool.stats.worker_restarts <= MAX_INIT_RESPAWNS


def test_submit_to_a_pool_whose_init_failed_raises(make_pool: MakePool) -> None:
    """Once init has failed, submit itself raises InitError."""
    pool = make_pool(init=jobs.init_raises, init_args=("gone",))
    assert wait_for(lambda: pool.stats.workers_alive == 0, timeout=30)
    with pytest.raises(minipool.InitError, match="gone") as info:
        pool.submit(jobs.square, 1)
    assert isinstance(info.value.__cause__, jobs.InitFailure)


def test_init_failure_reaches_map(make_pool: MakePool) -> None:
    """A map on a pool whose init fails raises InitError rather than hanging."""
    pool = make_pool(init=jobs.init_raises, init_args=("broken",))
    with pytest.raises(minipool.InitError, match="broken"):
        list(pool.map(jobs.square, range(100)))
    assert pool.stats.worker_restarts <= MAX_INIT_RESPAWNS


# ---- stop() --------------------------------------------------------------------------


def test_stop_lets_jobs_in_hand_finish_and_cancels_the_rest(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """stop(): running jobs see stop_requested() and finish; pending ones are cancelled."""
    markers = tmp_path / "markers"
    markers.mkdir()
    pool = make_pool(init=jobs.init_with_markers, init_args=(markers,))
    running = [
        pool.submit(jobs.loop_until_stop_requested, str(tmp_path / f"started-{i}"))
        for i in range(2)
    ]
    for i in range(2):
        wait_for_path(tmp_path / f"started-{i}", timeout=30)
    pending = [pool.submit(jobs.write_marker, str(tmp_path), f"job-{i}") for i in range(6)]
    pool.stop()
    assert [future.result(timeout=30) for future in running] == [True, True]
    for future in pending:
        with pytest.raises(CancelledError):
            future.result(timeout=30)
    assert not list(tmp_path.glob("job-*"))
    with pytest.raises(RuntimeError, match="shut down or stopped"):
        pool.submit(jobs.square, 1)
    pool.shutdown()
    assert _marker_counts(markers, "teardown") == _marker_counts(markers, "init")
    assert len(_marker_counts(markers, "teardown")) == 2


def test_stop_without_jobs_exits_the_workers(make_pool: MakePool, leak_check: Snapshot) -> None:
    """stop() on an idle pool returns at once and the workers exit on their own."""
    pool = make_pool()
    pool.submit(jobs.square, 1).result(timeout=30)
    pool.stop()
    assert wait_for(lambda: not leaked_processes(leak_check), timeout=30)


def test_stop_during_a_map_ends_the_map(make_pool: MakePool) -> None:
    """A map being consumed when stop() is called yields what finished, then CancelledError."""
    pool = make_pool()
    results = pool.map(jobs.square, range(1_000_000))
    assert next(results) == 0
    pool.stop()
    seen = [0]
    with pytest.raises(CancelledError):
        for value in results:
            seen.append(value)
    assert seen == [x * x for x in range(len(seen))]


# ---- shutdown() ----------------------------------------------------------------------


def test_shutdown_waits_for_every_accepted_job(make_pool: MakePool) -> None:
    """shutdown(wait=True) returns only after every accepted job has its result."""
    pool = make_pool()
    futures = [pool.submit(jobs.sleep_then_return, 0.01, x) for x in range(40)]
    pool.shutdown()
    assert all(future.done() for future in futures)
    assert [future.result(timeout=0) for future in futures] == list(range(40))


def test_context_manager_exit_waits(make_pool: MakePool) -> None:
    """Leaving the with block waits for the jobs, as shutdown(wait=True) does."""
    with make_pool() as pool:
        futures = [pool.submit(jobs.sleep_then_return, 0.01, x) for x in range(40)]
    assert all(future.done() for future in futures)
    assert [future.result(timeout=0) for future in futures] == list(range(40))
    with pytest.raises(RuntimeError):
        pool.submit(jobs.square, 1)


def test_submit_after_shutdown_raises(make_pool: MakePool) -> None:
    """A pool that was shut down refuses new jobs with RuntimeError, in submit and in map."""
    pool = make_pool()
    pool.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(jobs.square, 1)
    with pytest.raises(RuntimeError, match="shut down"):
        list(pool.map(jobs.square, range(3)))


def test_shutdown_cancel_futures_cancels_pending_jobs(make_pool: MakePool, tmp_path: Path) -> None:
    """shutdown(cancel_futures=True) cancels the jobs no worker has taken; those never run."""
    pool = make_pool(1)
    started, release = tmp_path / "started", tmp_path / "release"
    blocker = pool.submit(jobs.block_until_released, str(started), str(release), "first")
    wait_for_path(started, timeout=30)
    futures = [pool.submit(jobs.write_marker, str(tmp_path), f"job-{i}") for i in range(8)]
    pool.shutdown(wait=False, cancel_futures=True)
    release.touch()
    pool.shutdown()
    assert blocker.result(timeout=0) == "first"
    cancelled = [future.cancelled() for future in futures]
    assert all(cancelled)  # pending, wherever they waited
    for index, future in enumerate(futures):
        ran = (tmp_path / f"job-{index}").exists()
        assert ran is not cancelled[index]
        if ran:
            assert future.result(timeout=0) == f"job-{index}"


def test_shutdown_without_wait_returns_at_once(
    make_pool: MakePool, tmp_path: Path, leak_check: Snapshot
) -> None:
    """shutdown(wait=False) returns while a job runs; the job finishes and the workers exit."""
    pool = make_pool()
    started, release = tmp_path / "started", tmp_path / "release"
    future = pool.submit(jobs.block_until_released, str(started), str(release), "late")
    wait_for_path(started, timeout=30)
    began = time.monotonic()
    pool.shutdown(wait=False)
    assert time.monotonic() - began < 1
    assert not future.done()
    release.touch()
    assert future.result(timeout=30) == "late"
    assert wait_for(lambda: not leaked_processes(leak_check), timeout=30)


def test_pool_dropped_without_shutdown_exits(leak_check: Snapshot) -> None:
    """A pool that is garbage-collected without shutdown still lets its workers exit."""
    pool = minipool.Pool(2, start_method="fork")
    assert pool.submit(jobs.square, 5).result(timeout=30) == 25
    del pool
    gc.collect()
    assert wait_for(lambda: not leaked_processes(leak_check), timeout=30)


def test_default_start_method_is_forkserver_on_linux(make_pool: MakePool) -> None:
    """Without start_method, workers on Linux come from the forkserver, not from this process."""
    pool = make_pool(1, start_method=None)
    assert pool.submit(jobs.getppid).result(timeout=30) != os.getpid()


def test_workers_default_to_the_cpu_count(make_pool: MakePool) -> None:
    """workers=None starts one worker per CPU this process may run on."""
    pool = make_pool(None)
    assert pool.workers == len(os.sched_getaffinity(0))
    assert pool.stats.workers_alive == pool.workers


# ---- max_worker_memory ---------------------------------------------------------------


def test_a_worker_past_max_worker_memory_is_recycled_between_jobs(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """Jobs leaking 40 MB each: a worker is replaced once past the limit; teardown runs."""
    limit = 150 << 20
    pool = make_pool(1, max_worker_memory=limit, init=jobs.init_with_markers, init_args=(tmp_path,))
    # All at once: a worker that leaves hands back the jobs it had queued, unrun.
    futures = [pool.submit(jobs.leak_and_report, 40) for _ in range(12)]
    reports = [future.result(timeout=30) for future in futures]
    pool.shutdown()
    pids = {pid for pid, _ in reports}
    assert len(pids) >= 3  # 12 x 40 MB cannot fit in one worker under 150 MB
    # A worker runs at most one job past the limit before it leaves: two would
    # put it past limit + 80 MB. The 20 MB beyond one job are for what a worker
    # allocates between its check and its next job (Python 3.13 once read 1.1 MB).
    assert max(resident for _, resident in reports) < limit + (60 << 20)
    assert pool.stats.worker_restarts >= 2
    assert _marker_counts(tmp_path, "teardown") == _marker_counts(tmp_path, "init")
