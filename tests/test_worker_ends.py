"""Every worker ends, and what its jobs started ends with it.

An init that never returns, a nested pool or a thread that a job leaves
running: none may hold ``stop()`` or ``shutdown()`` for longer than a grace
(``EXIT_GRACE_SECONDS``). And a process that a job starts dies with its
worker, whether the worker is killed, crashes or exits, unless the process
left the worker's process group.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import jobs
import pytest
from helpers import Snapshot, gone, shut_down, wait_for

import minipool
from minipool._backends.processes import handle
from minipool._backends.processes.handle import EXIT_GRACE_SECONDS

MakePool = Callable[..., minipool.Pool]
# How long shutdown() may take when a worker must be killed after its grace.
BOUND = EXIT_GRACE_SECONDS + 10
# The grace in the tests that wait it out: the master reads the constant at
# each use, and 5 s would cost them 15 s of the suite.
SHORT_GRACE_SECONDS = 1.0


@pytest.fixture
def short_grace(monkeypatch: pytest.MonkeyPatch) -> float:
    """The pools of this test give a worker ``SHORT_GRACE_SECONDS`` to end."""
    monkeypatch.setattr(handle, "EXIT_GRACE_SECONDS", SHORT_GRACE_SECONDS)
    return SHORT_GRACE_SECONDS


def _shutdown_within(pool: minipool.Pool, seconds: float) -> float:
    """Run ``pool.shutdown()``; fail unless it returns within ``seconds``. Its duration."""
    began = time.monotonic()
    assert shut_down(pool, seconds), f"shutdown() still waits after {seconds} s"
    return time.monotonic() - began


def _kill_if_alive(pid: int) -> None:
    if not gone(pid):
        os.kill(pid, signal.SIGKILL)


def test_stop_ends_a_worker_stuck_in_init(
    make_pool: MakePool, tmp_path: Path, caplog: pytest.LogCaptureFixture, short_grace: float
) -> None:
    """``stop()`` with the only worker stuck in ``init``: the jobs sent to it are cancelled
    at once, and the worker is killed after the grace, so ``shutdown()`` returns. Before,
    ``shutdown()`` waited for the init for ever."""
    pool = make_pool(1, init=jobs.init_hangs, init_args=(str(tmp_path),))
    futures = [pool.submit(jobs.square, x) for x in range(3)]
    assert wait_for(lambda: any(tmp_path.glob("init-*")), 30)
    pool.stop()
    done, _ = concurrent.futures.wait(futures, timeout=30)
    assert len(done) == 3
    assert all(future.cancelled() for future in futures)
    assert _shutdown_within(pool, BOUND) >= short_grace / 2
    assert f"took more than {short_grace:g} s to end its init" in caplog.text
    assert pool.stats.workers_alive == 0


@pytest.mark.usefixtures("short_grace")
def test_shutdown_runs_the_jobs_elsewhere_and_ends_a_worker_stuck_in_init(
    make_pool: MakePool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One worker's init never returns: its jobs run on the other worker, and
    ``shutdown()`` returns once the stuck one is killed after the grace."""
    caplog.set_level(logging.WARNING, logger="minipool")
    pool = make_pool(2, init=jobs.init_hangs_in_one_worker, init_args=(str(tmp_path),))
    futures = [pool.submit(jobs.square, x) for x in range(20)]
    assert [future.result(timeout=30) for future in futures] == [x * x for x in range(20)]
    _shutdown_within(pool, BOUND)
    assert "to end its init once the pool was done with it; it was killed" in caplog.text


def test_a_nested_pool_left_open_by_a_job_does_not_hold_its_worker(
    make_pool: MakePool, start_method: str, leak_check: Snapshot
) -> None:
    """A job leaves a pool of its own open: the worker stops it as it exits, so
    ``shutdown()`` returns at once. Before, the worker's exit (fork, forkserver) joined the
    nested pool's workers for ever."""
    pool = make_pool(1, start_method=start_method)
    assert pool.submit(jobs.leave_a_pool_open, 7).result(timeout=60) == 49
    assert _shutdown_within(pool, BOUND) < EXIT_GRACE_SECONDS


@pytest.mark.usefixtures("short_grace")
def test_a_thread_left_running_by_a_job_does_not_hold_shutdown(
    make_pool: MakePool, caplog: pytest.LogCaptureFixture
) -> None:
    """A job starts a non-daemon thread that runs on: the worker tears down and says it
    exits, and the master kills it when it still lingers after the grace."""
    caplog.set_level(logging.WARNING, logger="minipool")
    pool = make_pool(1)
    assert pool.submit(jobs.leave_a_thread_running).result(timeout=30) == "started"
    _shutdown_within(pool, BOUND)
    assert "to exit after its teardown" in caplog.text


@pytest.mark.parametrize("how", ["overrun", "crash", "return"])
def test_a_process_a_job_starts_dies_with_its_worker(
    make_pool: MakePool, start_method: str, tmp_path: Path, how: str
) -> None:
    """A job starts a process. When its worker is killed for ``task_timeout``, crashes, or
    exits at ``shutdown()``, that process dies too (the worker's process group is killed).
    Before, a timed-out job's process ran on, an orphan."""
    pid_file = tmp_path / "child"
    pool = make_pool(1, start_method=start_method, task_timeout=2)
    future = pool.submit(jobs.start_a_process_then, how, str(pid_file))
    error = {"overrun": minipool.TaskTimeout, "crash": minipool.WorkerCrashed}.get(how)
    if error is None:
        assert future.result(timeout=30) > 0
    else:
        with pytest.raises(error):
            future.result(timeout=30)
    child = int(pid_file.read_text())
    try:
        if how == "return":
            assert not gone(child)  # a process a job starts may outlive the job
            _shutdown_within(pool, BOUND)
        assert wait_for(lambda: gone(child), 10)
    finally:
        _kill_if_alive(child)


def test_a_process_that_leaves_the_workers_group_outlives_it(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """A process started in a session of its own (``start_new_session=True``) is not the
    worker's: it survives the worker's death, as the README says."""
    pid_file = tmp_path / "child"
    pool = make_pool(1)
    future = pool.submit(jobs.start_a_process_then, "crash", str(pid_file), True)
    with pytest.raises(minipool.WorkerCrashed):
        future.result(timeout=30)
    child = int(pid_file.read_text())
    try:
        assert pool.submit(jobs.square, 3).result(timeout=30) == 9  # the worker was replaced
        assert not gone(child)
    finally:
        _kill_if_alive(child)


def test_a_job_sent_to_a_worker_in_init_has_not_started_its_clock(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """``task_timeout`` counts from a job's start: a job waiting for a slow init does not
    time out, and runs once the init is done."""
    release = tmp_path / "release"
    pool = make_pool(
        1, init=jobs.init_blocks_until_released, init_args=(str(release),), task_timeout=0.5
    )
    future = pool.submit(jobs.square, 3)
    time.sleep(1.0)  # past the timeout: a deadline, not a wait for a condition
    assert not future.done()
    release.touch()
    assert future.result(timeout=30) == 9
