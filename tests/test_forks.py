"""Forks: a process forked from the caller never touches its parent's pools, and a job
that forks never answers from the child.

Forks from the caller run in a script (a subprocess), never in the test process
itself; forks by jobs run in real workers under every start method.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path
from typing import Any

import jobs
import pytest
from helpers import gone, wait_for

FORKING_CALLER = textwrap.dedent(
    """
    import multiprocessing
    import os
    import sys
    import warnings

    import minipool

    # This process forks with the pool's thread running, on purpose; Python 3.12+ warns.
    warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)


    def square(x):
        return x * x


    def use_the_parents_pool(pool):
        for attempt in (lambda: pool.submit(square, 3), lambda: pool.map(square, [1]),
                        lambda: pool.stats):
            try:
                attempt()
                print("child: used the parent's pool", flush=True)
            except RuntimeError as error:
                print("child:", error, flush=True)
        pool.shutdown()  # does nothing here: the pool is the parent's
        with pool:
            pass


    if __name__ == "__main__":
        method, how = sys.argv[1:3]
        pool = minipool.Pool(2, start_method=method)
        assert pool.submit(square, 2).result(timeout=30) == 4
        pool.map(square, range(200_000))  # dropped unread: it runs on, in a thread
        held = pool.map(square, range(1000))  # held unread: shutdown pulls it to its end
        if how == "multiprocessing":
            child = multiprocessing.get_context("fork").Process(target=use_the_parents_pool,
                                                                args=(pool,))
            child.start()
            child.join()
            assert child.exitcode == 0, child.exitcode
        else:
            pid = os.fork()
            if pid == 0:
                use_the_parents_pool(pool)
                sys.exit(0)  # a normal exit: atexit handlers run
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        print("parent:", pool.submit(square, 4).result(timeout=30), flush=True)
        print("parent:", list(pool.map(square, range(4))), flush=True)
        pool.shutdown()
        print("parent:", len(list(held)), flush=True)
    """
)


@pytest.mark.parametrize("how", ["os-fork", "multiprocessing"])
def test_a_child_forked_from_the_caller_leaves_the_parents_pool_alone(
    tmp_path: Path, start_method: str, how: str
) -> None:
    """The child cannot use the parent's pool (a clear RuntimeError; shutdown does nothing,
    even with the parent's maps running on unread) and its exit does not stop it: the
    parent's later jobs run. Before, the child's exit set the shared stop flag, and the
    parent's next job never resolved."""
    script = tmp_path / "caller.py"
    script.write_text(FORKING_CALLER)
    done = subprocess.run(
        [sys.executable, str(script), start_method, how],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    parent, child = re.findall(r"process (\d+), which forked this one \(pid (\d+)\)", lines[0])[0]
    refusal = (
        f"child: this pool belongs to process {parent}, which forked this one (pid {child}); "
        "a forked process cannot use its parent's pool. Create a new minipool.Pool in the "
        "child, or fork before creating the pool."
    )
    assert lines == [refusal] * 3 + ["parent: 16", "parent: [0, 1, 4, 9]", "parent: 1000"]
    assert parent != child
    assert done.stderr == ""  # nothing complained at the child's exit


REVOKING_CALLER = textwrap.dedent(
    """
    import os
    import sys
    import time
    import warnings

    import minipool

    warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)


    def block_until(path):
        while not os.path.exists(path):
            time.sleep(0.01)
        return "blocker"


    if __name__ == "__main__":
        method, release = sys.argv[1:3]
        pool = minipool.Pool(1, start_method=method)
        blocker = pool.submit(block_until, release)
        queued = pool.submit(abs, -7)  # sent to the busy worker, to wait there unstarted
        deadline = time.monotonic() + 30
        while queued._placement is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert queued._placement is not None, "the job never reached the worker"
        pid = os.fork()
        if pid == 0:
            print("child: cancel() ->", queued.cancel(), flush=True)
            os._exit(0)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        open(release, "w").close()
        print("parent:", blocker.result(timeout=30), queued.result(timeout=30), flush=True)
        pool.shutdown()
    """
)


def test_a_child_forked_from_the_caller_cannot_take_back_the_parents_jobs(
    tmp_path: Path, start_method: str
) -> None:
    """A forked child's copy of a future that waits at a worker cannot cancel it there:
    the worker's gate is the parent's. Before, the child's cancel() revoked the job in
    shared memory, the worker skipped it, and the parent waited for it forever (a forked
    worker did so too, tearing down its copy of a map that only a thread's frame held)."""
    script = tmp_path / "caller.py"
    script.write_text(REVOKING_CALLER)
    done = subprocess.run(
        [sys.executable, str(script), start_method, str(tmp_path / "release")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["child: cancel() -> False", "parent: blocker 7"]


ORPHANING_CALLER = textwrap.dedent(
    """
    import os
    import sys
    import time

    import minipool


    if __name__ == "__main__":
        method, directory = sys.argv[1:3]
        pool = minipool.Pool(2, start_method=method)
        workers = {pool.submit(os.getpid).result(timeout=30) for _ in range(20)}
        if os.fork() == 0:
            time.sleep(60)  # outlives its parent, holding whatever it inherited
            os._exit(0)
        with open(os.path.join(directory, "workers"), "w") as file:
            file.write(" ".join(map(str, workers)))
        time.sleep(60)  # until the test kills this process
    """
)


def test_workers_see_the_caller_die_even_while_a_child_it_forked_lives(
    tmp_path: Path, start_method: str
) -> None:
    """A child forked from the caller closes its copies of the pool's pipes, so when the
    caller is killed its workers still see it gone and exit."""
    script = tmp_path / "caller.py"
    script.write_text(ORPHANING_CALLER)
    caller = subprocess.Popen([sys.executable, str(script), start_method, str(tmp_path)])
    workers: list[int] = []
    try:
        listing = tmp_path / "workers"
        assert wait_for(lambda: listing.exists() and listing.read_text(), 30)
        workers = [int(pid) for pid in listing.read_text().split()]
        os.kill(caller.pid, signal.SIGKILL)
        caller.wait(timeout=30)
        assert wait_for(lambda: all(gone(pid) for pid in workers), 15)
    finally:
        caller.kill()
        caller.wait(timeout=30)
        for pid in workers:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
    # The forked child is still asleep: it is not one of the workers' business.


@pytest.mark.parametrize("how", ["return", "raise", "exit"])
def test_a_job_whose_forked_child_comes_back_gets_its_own_result(
    make_pool: Any, start_method: str, how: str
) -> None:
    """A job forks, and the child returns (or raises) from the job instead of exiting. The
    child ends there, with the status the interpreter would give it; it sends nothing and
    reads no job. Before, it ran the worker loop too, and futures got other jobs' results."""
    events: list[dict[str, Any]] = []
    pool = make_pool(1, start_method=start_method, log_sink=events.append)
    fn = partial(jobs.fork_and_come_back, how, 0)
    futures = [pool.submit(fn, x) for x in range(20)]
    got = [future.result(timeout=30) for future in futures]
    status = {"return": 0, "raise": 1, "exit": 7}[how]
    assert got == [("child status", status), *range(1, 20)]
    assert list(pool.map(fn, range(1, 200))) == list(range(1, 200))
    assert [event["event"] for event in events] == ["from the job"]


def test_a_job_that_forks_in_an_untracked_chunk_runs_no_job_twice(make_pool: Any) -> None:
    """In a map of tiny jobs (run untracked, in one C loop), the forked child runs none of
    the chunk's later jobs: each job's result comes from the worker, once."""
    pool = make_pool(1)
    fn = partial(jobs.fork_and_come_back, "return", 2500)
    got = list(pool.map(fn, range(3000)))
    assert got[:2500] == list(range(2500))
    assert got[2500] == ("child status", 0)
    assert got[2501:] == list(range(2501, 3000))
    assert pool.stats.completed == 3000
