"""Every way a job can fail, under every start method; after each, the pool still runs jobs.

One table of cases (after loky's ``crash_cases``): the job raises, its result
or exception does not pickle or does not unpickle in the caller, or its
worker dies (a signal, ``os._exit``, a segfault). Each case checks the error
the caller gets and then that the same pool runs another job.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import jobs
import pytest
from helpers import Snapshot, wait_for

import minipool

MakePool = Callable[..., minipool.Pool]


@dataclass(frozen=True)
class Case:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    error: type[BaseException]
    match: str
    fields: dict[str, Any] = field(default_factory=dict)
    # Text the worker traceback (the error's RemoteTraceback cause) must hold;
    # None where no worker traceback exists (a crash, a failure in the caller).
    traceback: str | None = None
    crashes: bool = False


CASES = {
    "raise": Case(
        jobs.raise_value_error, ("plain",), ValueError, "plain", traceback="raise_value_error"
    ),
    "sys-exit": Case(jobs.system_exit, (2,), SystemExit, "2", traceback="system_exit"),
    "keyboard-interrupt-raised-by-the-job": Case(
        jobs.raise_keyboard_interrupt,
        (),
        KeyboardInterrupt,
        "raised by the job itself",
        traceback="raise_keyboard_interrupt",
    ),
    "result-does-not-pickle": Case(
        jobs.return_lock,
        (),
        minipool.RemoteError,
        "could not be pickled",
        {"type_name": "TypeError"},
        traceback="cannot pickle '_thread.lock' object",
    ),
    "result-does-not-unpickle": Case(
        jobs.return_worker_only_value, (), minipool.RemoteError, "could not be unpickled"
    ),
    "exception-does-not-pickle": Case(
        jobs.raise_unpicklable_exception,
        (),
        minipool.RemoteError,
        "holds a lock",
        {"type_name": "UnpicklableError"},
        traceback="raise_unpicklable_exception",
    ),
    "exception-does-not-rebuild-gh-79492": Case(
        jobs.raise_two_argument_error,
        (),
        minipool.RemoteError,
        "code 7: custom __init__",
        {"type_name": "TwoArgumentError"},
        traceback="raise_two_argument_error",
    ),
    "exception-does-not-unpickle": Case(
        jobs.raise_worker_only_error,
        (),
        minipool.RemoteError,
        "only workers can rebuild me",
        {"type_name": "WorkerOnlyError"},
        traceback="raise_worker_only_error",
    ),
    "memory-error": Case(
        jobs.raise_memory_error, (), MemoryError, "job ran out", traceback="raise_memory_error"
    ),
    "argument-does-not-unpickle-in-the-worker": Case(
        jobs.square,
        (jobs.CallerOnlyValue(),),
        minipool.RemoteError,
        "could not be unpickled in the worker",
        traceback="cannot be unpickled in a worker",
    ),
    "sigkill": Case(
        jobs.kill_self_with_signal,
        (signal.SIGKILL,),
        minipool.WorkerCrashed,
        "killed by SIGKILL",
        {"signal": "SIGKILL", "exitcode": -signal.SIGKILL},
        crashes=True,
    ),
    "sigterm": Case(
        jobs.kill_self_with_signal,
        (signal.SIGTERM,),
        minipool.WorkerCrashed,
        "killed by SIGTERM",
        {"signal": "SIGTERM", "exitcode": -signal.SIGTERM},
        crashes=True,
    ),
    "os-exit": Case(
        jobs.os_exit,
        (3,),
        minipool.WorkerCrashed,
        "exited with code 3",
        {"signal": None, "exitcode": 3},
        crashes=True,
    ),
    "segfault": Case(
        jobs.segfault,
        (),
        minipool.WorkerCrashed,
        "killed by SIGSEGV",
        {"signal": "SIGSEGV", "exitcode": -signal.SIGSEGV},
        crashes=True,
    ),
    # The rows after loky's: the worker dies, or the pickle raises, while the
    # job's result is pickled in the worker or its arguments unpickled there.
    "sigkill-while-pickling-the-result": Case(
        jobs.return_misbehaving_result,
        ("crash",),
        minipool.WorkerCrashed,
        "killed by SIGKILL",
        {"signal": "SIGKILL"},
        crashes=True,
    ),
    "os-exit-while-pickling-the-result": Case(
        jobs.return_misbehaving_result,
        ("exit",),
        minipool.WorkerCrashed,
        "exited with code 3",
        {"exitcode": 3},
        crashes=True,
    ),
    "raise-while-pickling-the-result": Case(
        jobs.return_misbehaving_result,
        ("raise",),
        minipool.RemoteError,
        "could not be pickled",
        {"type_name": "ValueError"},
        traceback="misbehaved while pickling",
    ),
    "system-exit-while-pickling-the-result": Case(
        jobs.return_exits_while_pickled,
        (),
        minipool.RemoteError,
        "could not be pickled",
        {"type_name": "SystemExit"},
        traceback="SystemExit: 4",
    ),
    "system-exit-while-unpickling-the-result-in-the-caller": Case(
        jobs.return_exits_in_caller, (), minipool.RemoteError, "could not be unpickled"
    ),
    "exception-instance-as-the-result-does-not-rebuild-gh-79492": Case(
        jobs.return_two_argument_error, (), minipool.RemoteError, "could not be unpickled"
    ),
    "system-exit-while-formatting-the-exception": Case(
        jobs.raise_error_whose_str_exits,
        (),
        jobs.ErrorWhoseStrExits,
        "a hostile __str__",
        traceback="raise_error_whose_str_exits",
    ),
    "sigkill-while-unpickling-the-arguments": Case(
        jobs.take_argument,
        (jobs.MisbehavingArgument("crash"),),
        minipool.WorkerCrashed,
        "killed by SIGKILL",
        {"signal": "SIGKILL"},
        crashes=True,
    ),
    "os-exit-while-unpickling-the-arguments": Case(
        jobs.take_argument,
        (jobs.MisbehavingArgument("exit"),),
        minipool.WorkerCrashed,
        "exited with code 3",
        {"exitcode": 3},
        crashes=True,
    ),
    "raise-while-unpickling-the-arguments": Case(
        jobs.take_argument,
        (jobs.MisbehavingArgument("raise"),),
        minipool.RemoteError,
        "could not be unpickled in the worker",
        {"type_name": "ValueError"},
        traceback="misbehaved while pickling",
    ),
}
# Where blame can go wrong: the worker dies (or the pickle fails) with the
# outcome of the job before still in its buffers.
BEHIND_A_FAST_JOB = [name for name, case in CASES.items() if case.crashes or "pickling" in name]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_failure_reaches_the_caller_and_the_pool_goes_on(
    make_pool: MakePool, start_method: str, case: Case
) -> None:
    """The failing job gets the expected error; the pool then runs another job."""
    pool = make_pool(1, start_method=start_method)
    future = pool.submit(case.fn, *case.args)
    with pytest.raises(case.error, match=case.match) as info:
        future.result(timeout=30)
    error = info.value
    for name, value in case.fields.items():
        assert getattr(error, name) == value
    if case.crashes:
        assert isinstance(error, minipool.WorkerCrashed)
        assert error.worker_id == 0
        assert isinstance(error.pid, int)
        assert f"worker 0 (pid {error.pid})" in str(error)
        assert error.job_id == 0
    if case.traceback is not None:
        assert isinstance(error.__cause__, minipool.RemoteTraceback)
        assert case.traceback in error.__cause__.tb
    assert pool.submit(jobs.square, 9).result(timeout=30) == 81
    stats = pool.stats
    assert stats.failed == 1
    assert stats.worker_restarts == (1 if case.crashes else 0)


@pytest.mark.parametrize("name", BEHIND_A_FAST_JOB)
def test_failure_right_behind_a_fast_job_is_blamed_on_its_own_job(
    make_pool: MakePool, start_method: str, name: str
) -> None:
    """A fast job, then the failing one, sent together: the fast one keeps its result.

    Both go to a worker still starting, so they reach it in one read, and the
    fast job's outcome is still in the worker's buffers when the second fails.
    """
    case = CASES[name]
    pool = make_pool(1, start_method=start_method)
    fast = pool.submit(jobs.square, 7)
    failing = pool.submit(case.fn, *case.args)
    assert fast.result(timeout=30) == 49
    with pytest.raises(case.error, match=case.match) as info:
        failing.result(timeout=30)
    if case.crashes:
        assert isinstance(info.value, minipool.WorkerCrashed)
        assert info.value.job_id == 1
    assert pool.submit(jobs.square, 9).result(timeout=30) == 81
    stats = pool.stats
    assert (stats.completed, stats.failed) == (3, 1)
    assert stats.worker_restarts == (1 if case.crashes else 0)


# Fresh pools per start method in the idle-death test: a race seen in one run of
# five needs some twenty to show.
IDLE_DEATH_POOLS = 20


@pytest.mark.timeout(240)
def test_a_worker_killed_while_idle_costs_no_job_its_outcome(
    start_method: str, leak_check: Snapshot
) -> None:
    """SIGKILL an idle worker (the OOM killer's pick), then map at once: no job is blamed.

    The master may send the dead worker jobs before it sees the death; those
    never ran, and run again elsewhere. Repeated on fresh pools: it is a race.
    """
    for _ in range(IDLE_DEATH_POOLS):
        with minipool.Pool(2, start_method=start_method) as pool:
            pids = {pid for _, pid in pool.map(jobs.square_and_pid, range(50), chunksize=1)}
            os.kill(min(pids), signal.SIGKILL)
            got = list(pool.map(jobs.square, range(500), return_exceptions=True))
            assert got == [x * x for x in range(500)]
            assert pool.stats.failed == 0


def test_crash_fails_only_its_own_job(make_pool: MakePool, start_method: str) -> None:
    """Jobs queued behind a job that kills its worker still run, in a new worker."""
    pool = make_pool(1, start_method=start_method)
    before = pool.submit(jobs.getpid).result(timeout=30)
    crash = pool.submit(jobs.kill_self_with_signal, signal.SIGKILL)
    after = [pool.submit(jobs.square_and_pid, x) for x in range(5)]
    with pytest.raises(minipool.WorkerCrashed) as info:
        crash.result(timeout=30)
    assert info.value.pid == before
    results = [future.result(timeout=30) for future in after]
    assert [value for value, _ in results] == [x * x for x in range(5)]
    assert before not in {pid for _, pid in results}
    assert pool.stats.worker_restarts == 1
    assert pool.stats.workers_alive == 1


def test_crash_inside_a_map_chunk_fails_only_that_item(
    make_pool: MakePool, start_method: str
) -> None:
    """A worker killed by item 5 of a map gives WorkerCrashed at index 5 and results elsewhere."""
    pool = make_pool(start_method=start_method)
    got = list(pool.map(jobs.die_on_5, range(20), return_exceptions=True))
    assert len(got) == 20
    assert isinstance(got[5], minipool.WorkerCrashed)
    assert got[5].signal == "SIGKILL"
    assert got[:5] + got[6:] == [x * x for x in range(20) if x != 5]


def test_crash_inside_a_large_chunk_fails_only_that_item(make_pool: MakePool) -> None:
    """With one chunk holding every item, only the item that killed the worker fails."""
    pool = make_pool(1)
    got = list(pool.map(jobs.die_on_5, range(20), chunksize=20, return_exceptions=True))
    assert [type(value) for value in got].count(minipool.WorkerCrashed) == 1
    assert isinstance(got[5], minipool.WorkerCrashed)
    assert got[:5] + got[6:] == [x * x for x in range(20) if x != 5]


def test_crash_in_an_untracked_chunk_is_pinned_on_its_job(make_pool: MakePool) -> None:
    """Tiny jobs run untracked; a crash among them re-runs their chunk tracked, failing one job.

    The crashing job runs twice (it kills a second worker, then is known), so
    two workers are replaced; every other job gets its result.
    """
    pool = make_pool()
    got = list(pool.map(jobs.die_at_30000, range(60_000), return_exceptions=True))
    crashed = [index for index, value in enumerate(got) if isinstance(value, Exception)]
    assert crashed == [30_000]
    assert isinstance(got[30_000], minipool.WorkerCrashed)
    assert got[30_000].job_id is not None
    assert got[:30_000] + got[30_001:] == [x + 1 for x in range(60_000) if x != 30_000]
    assert pool.stats.worker_restarts == 2
    assert pool.submit(jobs.square, 3).result(timeout=30) == 9


@pytest.mark.parametrize("kind", jobs.UNREADABLE_RESULTS)
def test_a_result_the_caller_cannot_unpickle_costs_no_other_job_its_result(
    make_pool: MakePool, kind: str
) -> None:
    """In a map of tiny jobs, whose results come back batched, each result that does not
    unpickle in the caller fails its own job; every other job keeps its result."""
    pool = make_pool(2)
    unreadable = frozenset({0, 777, 1500, 1501, 2999})
    fn = partial(jobs.unreadable_at, unreadable, kind)
    got = list(pool.map(fn, range(3000), return_exceptions=True))
    failed = {x for x, value in enumerate(got) if isinstance(value, BaseException)}
    assert failed == unreadable
    assert all(got[x] == x for x in range(3000) if x not in unreadable)
    for x in unreadable:
        assert isinstance(got[x], minipool.RemoteError)
        assert f"the result of job {x} could not be unpickled in the caller" in str(got[x])
    assert pool.stats.failed == len(unreadable)


def test_arguments_that_do_not_unpickle_in_the_worker_fail_their_job(
    make_pool: MakePool,
) -> None:
    """Arguments a worker cannot rebuild give RemoteError for their job; no worker dies."""
    pool = make_pool(1)
    future = pool.submit(jobs.square, jobs.CallerOnlyValue())
    with pytest.raises(minipool.RemoteError, match="could not be unpickled in the worker"):
        future.result(timeout=30)
    assert pool.submit(jobs.square, 4).result(timeout=30) == 16
    assert pool.stats.worker_restarts == 0


def test_a_map_chunk_that_does_not_unpickle_fails_only_its_jobs(make_pool: MakePool) -> None:
    """In a map, a chunk holding an argument the worker cannot rebuild fails, the rest runs."""
    pool = make_pool(1)
    items = [1, 2, jobs.CallerOnlyValue(), 4]
    got = list(pool.map(jobs.square, items, chunksize=2, return_exceptions=True))
    assert got[:2] == [1, 4]
    assert all(isinstance(value, minipool.RemoteError) for value in got[2:])
    assert pool.stats.worker_restarts == 0


def test_crash_in_map_without_return_exceptions_raises(make_pool: MakePool) -> None:
    """Without return_exceptions, a map over a crashing item raises WorkerCrashed there."""
    pool = make_pool()
    results = pool.map(jobs.die_on_5, range(20))
    assert [next(results) for _ in range(5)] == [x * x for x in range(5)]
    with pytest.raises(minipool.WorkerCrashed, match="SIGKILL"):
        next(results)
    assert pool.submit(jobs.square, 3).result(timeout=30) == 9


def test_worker_killed_while_idle_is_replaced(make_pool: MakePool) -> None:
    """A worker killed from outside between jobs is replaced; later jobs run normally."""
    pool = make_pool(1)
    pid = pool.submit(jobs.getpid).result(timeout=30)
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: pool.stats.worker_restarts == 1, timeout=30)
    assert pool.submit(jobs.getpid).result(timeout=30) != pid
    assert pool.stats.failed == 0


def test_shutdown_with_a_crashing_job_in_flight_returns(make_pool: MakePool) -> None:
    """shutdown() waits through a crash: the crashed job fails, the rest finish, nothing hangs."""
    pool = make_pool(1)
    futures = [
        pool.submit(jobs.square, 1),
        pool.submit(jobs.kill_self_with_signal, signal.SIGKILL),
        pool.submit(jobs.square, 2),
        pool.submit(jobs.square, 3),
    ]
    pool.shutdown()
    assert all(future.done() for future in futures)
    assert isinstance(futures[1].exception(timeout=0), minipool.WorkerCrashed)
    assert [futures[i].result(timeout=0) for i in (0, 2, 3)] == [1, 4, 9]


# ---- where in its life a worker dies ---------------------------------------------------


def test_a_worker_killed_with_a_queued_job_fails_only_the_running_one(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """SIGKILL a worker running job A with job B queued at it: A gets WorkerCrashed, B runs."""
    pool = make_pool(1)
    started, release = tmp_path / "started", tmp_path / "release"
    running = pool.submit(jobs.block_until_released, str(started), str(release), "A")
    queued = pool.submit(jobs.getpid)
    assert wait_for(started.exists, timeout=30)
    pid = _pid_of_only_worker()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(minipool.WorkerCrashed) as info:
        running.result(timeout=30)
    assert info.value.pid == pid
    assert queued.result(timeout=30) != pid  # it ran, on the replacement


def test_a_worker_killed_while_sending_a_result_gives_one_outcome(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """Killed while writing a large result: that job gets its result or WorkerCrashed, once."""
    pool = make_pool(1)
    started, release = tmp_path / "started", tmp_path / "release"
    future = pool.submit(jobs.block_then_return_big, str(started), str(release), 256)
    assert wait_for(started.exists, timeout=30)
    pid = _pid_of_only_worker()
    release.touch()
    # Best effort to kill it mid-write (the kernel names the wait where it can);
    # the outcome must be single and sound whatever the moment.
    wait_for(lambda: _blocked_in_pipe_write(pid), timeout=10)
    os.kill(pid, signal.SIGKILL)
    try:
        assert len(future.result(timeout=30)) == 256 << 20  # it made it before the kill
    except minipool.WorkerCrashed as error:
        assert error.pid == pid
    assert pool.submit(jobs.square, 6).result(timeout=30) == 36


def test_a_teardown_that_raises_does_not_hurt_the_pool(
    make_pool: MakePool, tmp_path: Path, start_method: str
) -> None:
    """Teardown raising in a worker: every job already has its result, shutdown completes."""
    pool = make_pool(
        2,
        start_method=start_method,
        init=jobs.init_whose_teardown_raises,
        init_args=(str(tmp_path),),
    )
    assert list(pool.map(jobs.square, range(50))) == [x * x for x in range(50)]
    pool.shutdown()
    assert len(list(tmp_path.glob("teardown-*"))) == 2


def _pid_of_only_worker() -> int:
    workers = [
        child
        for child in multiprocessing.active_children()
        if child.name.startswith("minipool-worker")
    ]
    assert len(workers) == 1, workers
    assert workers[0].pid is not None
    return workers[0].pid


def _blocked_in_pipe_write(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/wchan").read_text() in {"pipe_write", "anon_pipe_write"}
    except OSError:
        return True  # gone already, or the kernel does not say
