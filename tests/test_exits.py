"""How a caller's program ends: signals while ``shutdown()`` waits, and interpreter exit.

Each caller is a script run as a subprocess, in its own session as a terminal
would start it, so that the test can signal it and watch what it leaves.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import gone, wait_for

WAITING_CALLER = textwrap.dedent(
    """
    import os
    import sys
    import threading
    import time

    import minipool


    def long_job(directory):
        with open(os.path.join(directory, "started"), "w") as file:
            file.write(str(os.getpid()))
        time.sleep(120)  # far longer than the test: it must not wait for it


    def say_when_shutdown_waits(main):  # once the main thread is blocked inside shutdown()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            frame, names = sys._current_frames().get(main), []
            while frame is not None:
                names.append(frame.f_code.co_name)
                frame = frame.f_back
            if names and names[0] == "wait" and "shutdown" in names:
                print("waiting", flush=True)
                return
            time.sleep(0.01)


    if __name__ == "__main__":
        method, directory, how = sys.argv[1:4]
        pool = minipool.Pool(1, start_method=method)
        pool.submit(long_job, directory)
        while not os.path.exists(os.path.join(directory, "started")):
            time.sleep(0.01)
        threading.Thread(target=say_when_shutdown_waits, args=(threading.get_ident(),)).start()
        if how == "with":
            with pool:
                pass
        else:
            pool.shutdown()
        print("after shutdown", flush=True)
    """
)


@contextlib.contextmanager
def _caller(tmp_path: Path, script: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Run ``script`` with ``args``; its stderr goes to ``tmp_path / "stderr"``."""
    path = tmp_path / "caller.py"
    path.write_text(script)
    with open(tmp_path / "stderr", "w") as stderr:
        caller = subprocess.Popen(
            [sys.executable, str(path), *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,
        )
    try:
        yield caller
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(caller.pid, signal.SIGKILL)  # the caller and its workers
        caller.wait(timeout=30)
        if caller.stdout is not None:
            caller.stdout.close()


@pytest.mark.parametrize("how", ["with", "shutdown"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_while_shutdown_waits_stops_the_pool_and_a_second_kills_it(
    tmp_path: Path, how: str, signum: int
) -> None:
    """Ctrl-C or SIGTERM while ``with Pool()`` or ``shutdown()`` waits for a long job: the
    pool stops and says it waits for the job in hand; a second signal kills the worker and
    the program ends at once (one traceback for Ctrl-C, none and status 143 for SIGTERM).

    Before, the wait broke for good (CPython gh-90882) and the program ran on, silent,
    until the job ended. (The wait is the caller's: the start method does not matter.)
    """
    with _caller(tmp_path, WAITING_CALLER, "fork", str(tmp_path), how) as caller:
        assert caller.stdout is not None
        assert caller.stdout.readline() == "waiting\n"
        worker = int((tmp_path / "started").read_text())
        stderr = tmp_path / "stderr"
        os.kill(caller.pid, signum)
        assert wait_for(lambda: "waiting for the jobs in hand" in stderr.read_text(), 15), (
            stderr.read_text()
        )
        assert caller.poll() is None  # the job in hand still runs
        os.kill(caller.pid, signum)
        caller.wait(timeout=15)
        stdout = caller.stdout.read()
    assert wait_for(lambda: gone(worker), 10)
    assert "after shutdown" not in stdout
    text = stderr.read_text()
    if signum == signal.SIGTERM:
        assert caller.returncode == 128 + signal.SIGTERM, text
        assert "Traceback" not in text
    else:
        assert text.count("Traceback") == 1, text
        assert "KeyboardInterrupt" in text


EXITING_CALLER = textwrap.dedent(
    """
    import os
    import sys
    import time

    import minipool


    def record(path, x):
        time.sleep(0.05)
        with open(path, "a") as file:
            file.write(f"{x}\\n")


    if __name__ == "__main__":
        method, path, how = sys.argv[1:4]
        pool = minipool.Pool(2, start_method=method)
        for x in range(40):
            pool.submit(record, path, x)
        if how == "shutdown-without-wait":
            pool.shutdown(wait=False)
        else:
            del pool  # dropped: it finishes its jobs
    """
)


@pytest.mark.parametrize("how", ["shutdown-without-wait", "dropped"])
def test_jobs_accepted_before_shutdown_without_wait_run_before_the_program_exits(
    tmp_path: Path, start_method: str, how: str
) -> None:
    """``shutdown(wait=False)`` (or dropping the pool), then the end of the script: every job
    accepted still runs, as ``Executor`` promises; before, those that had not reached a
    worker were dropped."""
    output = tmp_path / "ran"
    with _caller(tmp_path, EXITING_CALLER, start_method, str(output), how) as caller:
        caller.wait(timeout=60)
    assert caller.returncode == 0, (tmp_path / "stderr").read_text()
    assert sorted(int(line) for line in output.read_text().split()) == list(range(40))


NO_MASTER_THREAD = textwrap.dedent(
    """
    import multiprocessing
    import sys
    import threading

    import minipool

    start = threading.Thread.start


    def refuse_the_master(thread):
        if thread.name == "minipool-master":
            raise RuntimeError("can't start new thread")
        start(thread)


    if __name__ == "__main__":
        threading.Thread.start = refuse_the_master  # as when the process runs out of threads
        try:
            minipool.Pool(2, start_method=sys.argv[1])
        except RuntimeError as error:
            print("refused:", error)
        print("children:", len(multiprocessing.active_children()))
    """
)


def test_a_pool_that_cannot_start_its_thread_leaves_no_worker_running(
    tmp_path: Path, start_method: str
) -> None:
    """``Pool()`` fails when its thread cannot start: the error reaches the caller, and the
    workers it had started are gone (before, they ran on without a master)."""
    with _caller(tmp_path, NO_MASTER_THREAD, start_method) as caller:
        stdout, _ = caller.communicate(timeout=60)
    assert caller.returncode == 0, (tmp_path / "stderr").read_text()
    assert stdout.splitlines() == ["refused: can't start new thread", "children: 0"]
