"""Large buffers travel through shared memory, not the pipe, and none of it outlives the pool.

A numpy array of 1 MiB or more, among a job's arguments or in its result, is
written once into a segment of the pool's directory under /dev/shm; the other
side reads it where it lies (``helpers.in_pool_segment`` looks the array's
address up in /proc/self/maps). Every test's leak check (``make_pool``) also
fails if a pool's directory is left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import large_jobs
import numpy as np
import pytest
from helpers import (
    descendants,
    gone,
    in_pool_segment,
    kill_processes,
    segment_dirs,
    segment_inode,
    wait_for,
    wait_for_path,
)
from large_jobs import LARGE, ramp

import minipool
from minipool._segments import REUSABLE, REUSE_MAX_BYTES

MakePool = Callable[..., minipool.Pool]
TESTS = Path(__file__).parent


def _segments_of(pool: minipool.Pool) -> list[str]:
    """The segment files in ``pool``'s directory now that hold values: not those kept to
    be written again (``_segments.REUSABLE``), which hold no more than
    ``REUSE_MAX_BYTES`` for each process."""
    directory = pool._backend.segments
    assert directory is not None
    names = os.listdir(directory.path)
    kept = [os.path.join(directory.path, name) for name in names if REUSABLE in name]
    with contextlib.suppress(FileNotFoundError):  # one taken for use meanwhile
        # The caller's and each worker's, each within its bound.
        assert sum(os.stat(path).st_size for path in kept) <= REUSE_MAX_BYTES * (pool.workers + 1)
    return [name for name in names if REUSABLE not in name]


def _kept_files(pool: minipool.Pool) -> set[int]:
    """The inodes of the files the caller keeps to write arguments into again."""
    directory = pool._backend.segments
    assert directory is not None
    return {entry.inode() for entry in os.scandir(directory.path) if REUSABLE in entry.name}


def _given_back(pool: minipool.Pool) -> bool:
    """Whether, after a job on each worker, every segment that held a value went back
    to its writer (kept to be written again, or removed)."""
    assert list(pool.map(abs, range(4 * pool.workers), chunksize=1)) == list(
        range(4 * pool.workers)
    )
    return wait_for(lambda: _segments_of(pool) == [], 10)


def test_a_large_result_arrives_in_place(make_pool: MakePool, start_method: str) -> None:
    """A worker's 1 MiB array comes back equal, writable, and read from the segment the
    worker wrote (the caller copies nothing); the segment goes back to its worker once
    the caller drops the array."""
    pool = make_pool(start_method=start_method)
    result = pool.submit(ramp, LARGE).result(timeout=30)
    np.testing.assert_array_equal(result, ramp(LARGE))
    assert result.flags.writeable
    assert in_pool_segment(result)
    assert len(_segments_of(pool)) == 1
    del result
    assert _given_back(pool)
    many = list(pool.map(ramp, [LARGE] * 6, [float(n) for n in range(6)], chunksize=2))
    for n, array in enumerate(many):
        np.testing.assert_array_equal(array, ramp(LARGE, n))
        assert in_pool_segment(array)


def test_a_large_argument_is_read_in_place(make_pool: MakePool, start_method: str) -> None:
    """A job reads its 1 MiB argument from the caller's segment (writable: its own copy on
    write), for ``submit`` and ``map``; the caller's array stays as it was."""
    pool = make_pool(start_method=start_method)
    argument = ramp(LARGE)
    expected = float(argument.sum())
    assert pool.submit(large_jobs.describe, argument).result(timeout=30) == (expected, True, True)
    arrays = [ramp(LARGE, n) for n in range(5)]
    described = list(pool.map(large_jobs.describe, arrays, chunksize=2))
    assert described == [(float(array.sum()), True, True) for array in arrays]
    assert pool.submit(large_jobs.scribble, argument).result(timeout=30) == -LARGE
    assert float(argument.sum()) == expected
    assert wait_for(lambda: _segments_of(pool) == [], 10)  # each task's file went with it


def test_small_buffers_stay_in_the_pickle(make_pool: MakePool) -> None:
    """Below the threshold, arrays travel in the pickle through the pipe, as before."""
    pool = make_pool()
    small = pool.submit(ramp, 8).result(timeout=30)
    np.testing.assert_array_equal(small, ramp(8))
    assert not in_pool_segment(small)
    assert pool.submit(large_jobs.describe, ramp(8)).result(timeout=30) == (28.0, True, False)


def test_every_kind_of_buffer_round_trips(make_pool: MakePool, start_method: str) -> None:
    """A result holding large and small arrays, a read-only one, a bytearray and a
    PickleBuffer: each arrives equal, read-only where it was, large arrays in place."""
    pool = make_pool(start_method=start_method)
    result = pool.submit(large_jobs.mixed, LARGE).result(timeout=30)
    np.testing.assert_array_equal(result["large"], ramp(LARGE))
    assert in_pool_segment(result["large"])
    np.testing.assert_array_equal(result["small"], ramp(8))
    np.testing.assert_array_equal(result["read_only"], ramp(LARGE, 1.0))
    assert not result["read_only"].flags.writeable
    assert result["bytes"] == bytearray(b"x" * LARGE)
    assert bytes(result["buffer"]) == b"y" * LARGE
    assert result["name"] == "mixed"


def test_many_large_results_in_flight_all_arrive(make_pool: MakePool) -> None:
    """Results unordered, some jobs failing among them: each job's own outcome, no file left
    once the map is read."""
    pool = make_pool()
    sizes = [LARGE if n % 3 else -1 for n in range(24)]  # ramp(-1) raises
    outcomes = list(pool.map(ramp, sizes, ordered=False, return_exceptions=True, chunksize=1))
    arrays = [outcome for outcome in outcomes if isinstance(outcome, np.ndarray)]
    assert len(arrays) == 16 and len(outcomes) == 24
    assert all(isinstance(outcome, (np.ndarray, ValueError)) for outcome in outcomes)
    assert all(float(array.sum()) == float(ramp(LARGE).sum()) for array in arrays)
    del outcomes, arrays
    assert _given_back(pool)


def test_a_worker_that_dies_holding_large_data_leaves_no_segment(
    make_pool: MakePool, start_method: str
) -> None:
    """Killed with a large argument mapped: that job gets WorkerCrashed, the job queued behind
    it at the same worker still reads its own argument on the new worker, and the files
    of both go once they are settled."""
    pool = make_pool(1, start_method=start_method)
    crashed = pool.submit(large_jobs.crash_holding, ramp(LARGE))
    behind = pool.submit(large_jobs.describe, ramp(LARGE, 1.0))
    with pytest.raises(minipool.WorkerCrashed):
        crashed.result(timeout=30)
    assert behind.result(timeout=30) == (float(ramp(LARGE, 1.0).sum()), True, True)
    assert wait_for(lambda: _segments_of(pool) == [], 10)


def test_a_job_killed_for_its_timeout_leaves_no_segment(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """A job that overruns ``task_timeout`` holding a large argument: TaskTimeout, and its
    file goes with its task."""
    pool = make_pool(1, task_timeout=0.5)
    future = pool.submit(large_jobs.wait_holding, ramp(LARGE), str(tmp_path / "never"))
    with pytest.raises(minipool.TaskTimeout):
        future.result(timeout=30)
    del future
    assert wait_for(lambda: _segments_of(pool) == [], 10)


def test_results_come_through_the_pipe_when_a_segment_cannot_be_written(
    make_pool: MakePool,
) -> None:
    """A worker that cannot write its segment (here a file size limit; in a container, a
    full /dev/shm): its large results arrive all the same, through the pipe."""
    pool = make_pool(1, init=large_jobs.init_small_file_limit)
    result = pool.submit(ramp, LARGE).result(timeout=30)
    np.testing.assert_array_equal(result, ramp(LARGE))
    assert not in_pool_segment(result)


_CALLER = textwrap.dedent(
    """
    import os, sys
    sys.path[:0] = [{tests!r}]
    import large_jobs, minipool
    if __name__ == "__main__":
        pool = minipool.Pool(2)
        if {limit_files}:  # from here this process cannot write a segment
            import resource, signal
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        print(pool._backend.segments.path, flush=True)
        print(pool.submit(large_jobs.describe, large_jobs.ramp(large_jobs.LARGE)).result())
        futures = [
            pool.submit(large_jobs.announce_then_wait, large_jobs.ramp(large_jobs.LARGE),
                        f"{{sys.argv[1]}}/started-{{n}}", f"{{sys.argv[1]}}/never")
            for n in range(2)
        ]
        print("waiting", flush=True)
        sys.stdin.read()
    """
)


@pytest.fixture
def caller(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """``caller(limit_files=False)``: a process with a pool whose two workers hold large
    arguments in jobs that never end. Killed, with its workers, after the test, which
    fails if any of them printed anything."""
    started: list[subprocess.Popen[str]] = []

    def start(limit_files: bool = False) -> subprocess.Popen[str]:
        code = _CALLER.format(tests=str(TESTS), limit_files=limit_files)
        process = subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        left = descendants(process.pid)
        process.kill()
        _, errors = process.communicate(timeout=30)  # until its workers are gone too
        kill_processes(left)
        assert wait_for(lambda: all(gone(pid) for pid in left), 30)  # noqa: B023
        # Nothing printed: no resource tracker warning (no segment is ever registered
        # with one), no traceback from a worker whose master died.
        assert errors == "", errors


def _workers_of(tmp_path: Path, caller: subprocess.Popen[str]) -> set[int]:
    """The pids of the caller's workers (and its forkserver), once both jobs started."""
    for n in range(2):
        wait_for_path(tmp_path / f"started-{n}", 30)
    return descendants(caller.pid)


def test_a_caller_killed_by_sigkill_leaves_no_shared_memory(
    caller: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    """SIGKILL of the caller while its workers hold large arguments: the workers see their
    master gone, remove the pool's directory, and exit."""
    process = caller()
    assert process.stdout is not None
    directory = process.stdout.readline().strip()
    assert "True, True" in process.stdout.readline()
    assert process.stdout.readline().strip() == "waiting"
    workers = _workers_of(tmp_path, process)
    assert os.path.isdir(directory) and os.listdir(directory)
    process.kill()
    process.wait(timeout=30)
    assert wait_for(lambda: all(gone(pid) for pid in workers), 30)
    assert not os.path.exists(directory)


def test_a_pool_removes_what_pools_killed_with_their_workers_left(
    make_pool: MakePool, caller: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    """Caller and workers SIGKILLed at once (nobody could clean up): the next pool that
    starts on the machine removes the dead pool's directory. (``make_pool`` first: its
    leak check runs after the caller's pipes are closed.)"""
    process = caller()
    assert process.stdout is not None
    directory = process.stdout.readline().strip()
    workers = _workers_of(tmp_path, process)
    # Stopped first, so that it cannot replace its workers, and killed last, so that no
    # worker lives on to see its master gone and clean up.
    os.kill(process.pid, signal.SIGSTOP)
    kill_processes(workers)
    assert wait_for(lambda: all(gone(pid) for pid in workers), 30)
    process.kill()
    process.wait(timeout=30)
    assert os.path.isdir(directory)
    make_pool(1)
    assert not os.path.exists(directory)
    assert segment_dirs(process.pid) == set()


def test_arguments_go_through_the_pipe_when_the_caller_cannot_write_a_segment(
    caller: Callable[..., subprocess.Popen[str]],
) -> None:
    """A caller that cannot write segments sends its large arguments in the pickle."""
    process = caller(limit_files=True)
    assert process.stdout is not None
    process.stdout.readline()
    assert process.stdout.readline().strip() == f"({float(ramp(LARGE).sum())}, True, False)"


# ---- Pool.share ----------------------------------------------------------------------


def test_a_shared_object_arrives_as_itself_read_only_and_in_place(
    make_pool: MakePool, start_method: str
) -> None:
    """A ``Shared`` in the arguments of many jobs (directly, as a keyword, inside a list):
    each job gets the object, its array a read-only view of the one shared copy, and each
    worker unpickles it once."""
    pool = make_pool(start_method=start_method)
    rows = np.arange(8 * LARGE, dtype=np.float64).reshape(8, LARGE)
    shared = pool.share({"rows": rows, "name": "table"})
    seen = list(pool.map(large_jobs.read_shared, [shared] * 8, range(8), chunksize=1))
    assert [sum_ for sum_, *_ in seen] == [float(row.sum()) for row in rows]
    assert all(not writable and in_place for _, writable, in_place, _, _ in seen)
    tables_per_worker: dict[int, set[int]] = {}
    for *_, table, pid in seen:
        tables_per_worker.setdefault(pid, set()).add(table)
    assert all(len(tables) == 1 for tables in tables_per_worker.values())
    keyword = pool.submit(large_jobs.read_shared, table=shared, index=3).result(timeout=30)
    assert keyword[0] == float(rows[3].sum())
    nested = pool.submit(large_jobs.describe_first, [shared]).result(timeout=30)
    assert nested == "dict"
    with pytest.raises(ValueError, match="read-only"):
        pool.submit(large_jobs.write_shared, shared.value["rows"]).result(timeout=30)


def test_a_shared_value_in_the_caller_is_the_shared_copy(make_pool: MakePool) -> None:
    """``shared.value`` is the object as jobs get it: the caller may drop its original."""
    pool = make_pool(1)
    shared = pool.share(ramp(LARGE))
    np.testing.assert_array_equal(shared.value, ramp(LARGE))
    assert in_pool_segment(shared.value) and not shared.value.flags.writeable
    assert pool.submit(large_jobs.describe, shared).result(timeout=30) == (
        float(ramp(LARGE).sum()),
        False,
        True,
    )


def test_a_released_shared_is_freed_and_cannot_be_sent(make_pool: MakePool) -> None:
    """``release()`` removes the shared copy at once (twice is fine); sending it after that
    is a TypeError at ``submit`` that says why, and its value is gone."""
    pool = make_pool(1)
    shared = pool.share(ramp(LARGE))
    assert pool.submit(large_jobs.describe, shared).result(timeout=30)[2]
    assert len(_segments_of(pool)) == 1
    shared.release()
    shared.release()
    assert shared.released and _segments_of(pool) == []
    with pytest.raises(TypeError, match="this Shared was released"):
        pool.submit(large_jobs.describe, shared)
    with pytest.raises(ValueError, match="released"):
        shared.value  # noqa: B018
    assert pool.submit(large_jobs.describe, ramp(8)).result(timeout=30)[0] == 28.0


def test_shutdown_frees_every_shared_object(make_pool: MakePool) -> None:
    """Shared objects never released go with the pool (the leak check sees the directory
    gone); ``share()`` on a closed pool is a clear error."""
    pool = make_pool(1)
    shared = [pool.share(ramp(LARGE, n)) for n in range(3)]
    assert len(_segments_of(pool)) == 3
    directory = pool._backend.segments
    assert directory is not None
    pool.shutdown()
    assert not os.path.exists(directory.path)
    assert not any(item.released for item in shared)
    with pytest.raises(RuntimeError, match="shut down"):
        pool.share(ramp(8))


def test_a_job_that_gets_a_shared_released_before_it_ran_fails_clearly(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """Released while a job that takes it waits: that job fails with an error that says
    so; the pool goes on."""
    pool = make_pool(1)
    shared = pool.share(ramp(LARGE))
    blocker = pool.submit(large_jobs.wait_holding, ramp(8), str(tmp_path / "go"))
    waiting = pool.submit(large_jobs.describe, shared)
    shared.release()
    (tmp_path / "go").touch()
    assert blocker.result(timeout=30) == 28.0
    with pytest.raises(Exception, match="released before the job ran"):
        waiting.result(timeout=30)
    assert pool.submit(large_jobs.describe, ramp(8)).result(timeout=30)[0] == 28.0


@pytest.mark.parametrize("size", [8 * 64, LARGE], ids=["small", "large"])
def test_memoryviews_travel_both_ways(make_pool: MakePool, size: int) -> None:
    """A memoryview, which pickle refuses, is a fine argument and result: it arrives as a
    memoryview with its format, shape and read-only flag (its bytes in a segment when
    large)."""
    pool = make_pool(1)
    views = pool.submit(large_jobs.memoryviews, size).result(timeout=30)
    expected = large_jobs.memoryviews(size)
    for name, view in views.items():
        assert (view.format, view.shape, view.readonly) == (
            expected[name].format,
            expected[name].shape,
            expected[name].readonly,
        ), name
        assert view.tobytes() == expected[name].tobytes(), name
    doubles = np.frombuffer(views["doubles"], dtype=np.float64)
    assert in_pool_segment(doubles) == (size == LARGE)
    argument = memoryview(ramp(size).tobytes()).cast("d")
    assert pool.submit(large_jobs.view_total, argument).result(timeout=30) == (
        float(ramp(size).sum()),
        "d",
    )


def test_argument_segments_are_written_again_once_their_worker_let_go(
    make_pool: MakePool,
) -> None:
    """A map over arrays of one size: the caller keeps the segments its jobs are done
    with and writes the next arguments into them (the same files, by inode), and every
    job still reads its own argument."""
    pool = make_pool()
    arrays = [ramp(LARGE, n) for n in range(12)]
    expected = [(float(array.sum()), True, True) for array in arrays]
    assert list(pool.map(large_jobs.describe, arrays, chunksize=1)) == expected
    assert wait_for(lambda: _kept_files(pool), 10)
    kept = _kept_files(pool)
    assert list(pool.map(large_jobs.describe, arrays[::-1], chunksize=1)) == expected[::-1]
    assert wait_for(lambda: _kept_files(pool) & kept, 10)  # some written a second time
    assert wait_for(lambda: _segments_of(pool) == [], 10)


def test_an_argument_a_job_keeps_is_never_written_over(make_pool: MakePool) -> None:
    """A job that keeps its argument (in a global of the worker): its segment is not
    reused, and what the job kept stays as it was while later arguments are written."""
    pool = make_pool(1)
    assert pool.submit(large_jobs.keep, ramp(LARGE, 5.0)).result(timeout=30) == 1
    later = [ramp(LARGE, -n) for n in range(8)]
    assert [result[0] for result in pool.map(large_jobs.describe, later, chunksize=1)] == [
        float(array.sum()) for array in later
    ]
    assert pool.submit(large_jobs.kept_sums).result(timeout=30) == [float(ramp(LARGE, 5.0).sum())]


def test_an_argument_a_forked_child_holds_is_never_written_over(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """A job forks a child that outlives it, holding its argument: that argument's
    segment is never written again, and the child reads it as it was."""
    pool = make_pool(1)
    release, report = tmp_path / "release", tmp_path / "report"
    child = pool.submit(large_jobs.fork_keeping, ramp(LARGE, 5.0), str(release), str(report))
    child_pid = child.result(timeout=30)
    later = [ramp(LARGE, -n) for n in range(8)]
    assert [result[0] for result in pool.map(large_jobs.describe, later, chunksize=1)] == [
        float(array.sum()) for array in later
    ]
    release.touch()
    wait_for_path(report, 30)
    assert float(report.read_text()) == float(ramp(LARGE, 5.0).sum())
    assert wait_for(lambda: gone(child_pid), 30)


def test_result_segments_are_written_again_once_the_caller_let_go(
    make_pool: MakePool,
) -> None:
    """Results read one by one and dropped: their segments go back to the workers, which
    write later results into them (the same files, by inode), each job's own."""
    pool = make_pool()
    first = set()
    for n, array in enumerate(pool.map(ramp, [LARGE] * 8, [float(n) for n in range(8)])):
        assert float(array[1]) == n + 1.0
        first.add(segment_inode(array))
    del array  # the loop's last
    assert _given_back(pool)
    again = set()
    for n, array in enumerate(pool.map(ramp, [LARGE] * 8, [-float(n) for n in range(8)])):
        assert float(array[1]) == 1.0 - n
        again.add(segment_inode(array))
    assert first & again


def test_a_result_the_caller_keeps_is_never_written_over(make_pool: MakePool) -> None:
    """A result kept while many more of its size come and go: it stays as it was."""
    pool = make_pool(1)
    kept = pool.submit(ramp, LARGE, 5.0).result(timeout=30)
    for n, array in enumerate(pool.map(ramp, [LARGE] * 12, [-float(n) for n in range(12)])):
        assert float(array[0]) == -n
    np.testing.assert_array_equal(kept, ramp(LARGE, 5.0))


def test_a_result_a_forked_child_holds_is_never_written_over(
    make_pool: MakePool, tmp_path: Path
) -> None:
    """The caller forks while it holds a result, then drops it: the child's copy of the
    mapping must never see a later result written into that segment."""
    pool = make_pool(1)
    result = pool.submit(ramp, LARGE, 5.0).result(timeout=30)
    release, report = tmp_path / "release", tmp_path / "report"
    pid = os.fork()
    if pid == 0:  # the child: no pytest, no pool; only the array it inherited
        try:
            wait_for_path(release, 30)
            report.write_text(repr(float(result.sum())))
        finally:
            os._exit(0)
    try:
        del result
        jobs = range(8)  # a chance for the segment to go back, were it given back
        assert list(pool.map(abs, jobs, chunksize=1)) == list(jobs)
        for n, array in enumerate(pool.map(ramp, [LARGE] * 8, [-float(n) for n in range(8)])):
            assert float(array[0]) == -n
        release.touch()
        wait_for_path(report, 30)
        assert float(report.read_text()) == float(ramp(LARGE, 5.0).sum())
    finally:
        release.touch()
        os.waitpid(pid, 0)


def test_a_worker_takes_back_only_segments_it_wrote_itself() -> None:
    """A segment named for this pid but written by an earlier process with the same pid
    (pids are reused) is not taken as this process's own to write again."""
    from minipool._segments import SegmentDir, writer_prefix

    directory = SegmentDir.create()
    assert directory is not None
    try:
        earlier = os.path.join(directory.path, f"{os.getpid()}-0000-7")
        mine = os.path.join(directory.path, f"{writer_prefix()}7")
        for path in (earlier, mine):
            Path(path).write_bytes(b"x" * 64)
        directory.returned([earlier, mine])
        names = os.listdir(directory.path)
        assert os.path.basename(earlier) in names  # left alone
        assert os.path.basename(mine) not in names and any(REUSABLE in n for n in names)
    finally:
        directory.remove()


def test_a_share_that_does_not_fit_in_shared_memory_is_a_clear_error(tmp_path: Path) -> None:
    """When /dev/shm cannot take the object (here a file size limit; in a container, a
    full /dev/shm), ``share()`` raises an OSError that says how big it was and what to do,
    and the pool still runs jobs."""
    code = textwrap.dedent(
        f"""
        import resource, signal, sys
        sys.path[:0] = [{str(TESTS)!r}]
        import large_jobs, minipool
        if __name__ == "__main__":
            with minipool.Pool(1, start_method="fork") as pool:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
                try:
                    pool.share(large_jobs.ramp(large_jobs.LARGE))
                except OSError as error:
                    print(error)
                print(pool.submit(abs, -3).result(timeout=30))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    message, answer = done.stdout.strip().splitlines()
    assert re.search(r"share\(\) could not put 1,04\d,\d{3} bytes", message), message
    assert "docker run --shm-size" in message
    assert answer == "3"


def test_pandas_frames_travel_in_place_both_ways(make_pool: MakePool, start_method: str) -> None:
    """A DataFrame, whose columns pandas passes out of band: as a result, it arrives equal
    with its columns in a segment; as an argument, the job reads them in place."""
    import pandas as pd  # the dev extra's

    pool = make_pool(start_method=start_method)
    result = pool.submit(large_jobs.frame, LARGE).result(timeout=30)
    pd.testing.assert_frame_equal(result, large_jobs.frame(LARGE))
    assert in_pool_segment(result["x"].to_numpy())
    expected = (float(ramp(LARGE).sum()), LARGE * (LARGE - 1) // 2, True)
    assert pool.submit(large_jobs.frame_facts, large_jobs.frame(LARGE)).result(timeout=30) == (
        expected
    )
