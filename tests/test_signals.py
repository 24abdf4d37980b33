"""Real signals to a real caller process: its workers never outlive it.

The caller is a script run as a subprocess, so that the test can kill it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import gone, wait_for

CALLER = textwrap.dedent(
    """
    import os
    import sys
    import time

    import minipool


    def busy_forever(pid_file):
        with open(pid_file, "w") as file:
            file.write(str(os.getpid()))
        while True:  # a job that would never end
            time.sleep(0.05)


    def getpid():
        return os.getpid()


    if __name__ == "__main__":
        method, directory = sys.argv[1], sys.argv[2]
        pool = minipool.Pool(2, start_method=method)
        busy = os.path.join(directory, "busy")
        pool.submit(busy_forever, busy)
        while not os.path.exists(busy):  # then the other worker is the idle one
            time.sleep(0.01)
        idle = pool.submit(getpid).result(timeout=30)
        print(idle, flush=True)
        time.sleep(600)  # until the test kills this process
    """
)


def _describe(pids: list[int]) -> str:
    """What each process is doing, for a failure message."""
    lines = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2]
            threads = {
                task.name: Path(task, "wchan").read_text()
                for task in Path(f"/proc/{pid}/task").iterdir()
            }
            lines.append(f"pid {pid}: state {state}, threads {threads}")
        except OSError as error:
            lines.append(f"pid {pid}: {error}")
    return "; ".join(lines)


def test_workers_exit_soon_after_the_caller_is_killed(tmp_path: Path, start_method: str) -> None:
    """SIGKILL the caller: its idle worker and the one stuck in a job both exit within seconds."""
    script = tmp_path / "caller.py"
    script.write_text(CALLER)
    caller = subprocess.Popen(
        [sys.executable, str(script), start_method, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    workers: list[int] = []
    try:
        assert caller.stdout is not None
        idle = int(caller.stdout.readline())
        workers.append(idle)
        busy_file = tmp_path / "busy"
        assert wait_for(busy_file.exists, timeout=30)
        assert wait_for(lambda: busy_file.read_text().isdigit(), timeout=30)
        busy = int(busy_file.read_text())
        workers.append(busy)
        assert idle != busy
        os.kill(caller.pid, signal.SIGKILL)
        caller.wait(timeout=30)
        assert wait_for(lambda: gone(idle) and gone(busy), timeout=10), _describe(workers)
    finally:
        caller.kill()
        caller.wait(timeout=30)
        if caller.stdout is not None:
            caller.stdout.close()
        for pid in workers:  # a failed test must not leave them running
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


STOPPING_CALLER = textwrap.dedent(
    """
    import os
    import sys
    import time

    import minipool


    def init(directory):
        open(os.path.join(directory, f"init-{os.getpid()}"), "w").close()
        yield
        open(os.path.join(directory, f"teardown-{os.getpid()}"), "w").close()


    def slow(seconds):
        time.sleep(seconds)
        return os.getpid()


    if __name__ == "__main__":
        method, directory, where = sys.argv[1:4]
        with minipool.Pool(2, start_method=method, init=init, init_args=(directory,)) as pool:
            if where == "map":
                for pid in pool.map(slow, [0.05] * 100_000):
                    print(pid, flush=True)
            else:
                print(pool.submit(slow, 0).result(), flush=True)
                pool.submit(slow, 0.5).result()  # interrupted here
                pool.submit(slow, 0.5).result()
        print("after the with block", flush=True)
    """
)


def _start_stopping_caller(tmp_path: Path, start_method: str, where: str) -> subprocess.Popen[str]:
    script = tmp_path / "caller.py"
    script.write_text(STOPPING_CALLER)
    return subprocess.Popen(
        [sys.executable, str(script), start_method, str(tmp_path), where],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives it
    )


def _assert_stopped_cleanly(tmp_path: Path, stdout: str) -> None:
    inits = {path.name.split("-")[1] for path in tmp_path.glob("init-*")}
    teardowns = {path.name.split("-")[1] for path in tmp_path.glob("teardown-*")}
    assert inits and teardowns == inits
    assert all(gone(int(pid)) for pid in inits)
    assert "after the with block" not in stdout


@pytest.mark.parametrize("where", ["map", "result"])
def test_ctrl_c_raises_one_keyboard_interrupt_and_stops_the_pool(
    tmp_path: Path, start_method: str, where: str
) -> None:
    """Ctrl-C (SIGINT to the process group) during map or result(): one traceback, teardown ran."""
    caller = _start_stopping_caller(tmp_path, start_method, where)
    try:
        assert caller.stdout is not None
        caller.stdout.readline()  # a first result: the pool is up
        os.killpg(caller.pid, signal.SIGINT)
        stdout, stderr = caller.communicate(timeout=30)
    finally:
        caller.kill()
        caller.wait(timeout=30)
    assert caller.returncode != 0
    assert stderr.count("Traceback") == 1, stderr
    assert "KeyboardInterrupt" in stderr
    _assert_stopped_cleanly(tmp_path, stdout)


def test_sigterm_exits_cleanly_without_a_traceback(tmp_path: Path, start_method: str) -> None:
    """SIGTERM to the caller: exit status 143, no traceback, workers torn down and gone."""
    caller = _start_stopping_caller(tmp_path, start_method, "map")
    try:
        assert caller.stdout is not None
        caller.stdout.readline()
        os.kill(caller.pid, signal.SIGTERM)
        stdout, stderr = caller.communicate(timeout=30)
    finally:
        caller.kill()
        caller.wait(timeout=30)
    assert caller.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    _assert_stopped_cleanly(tmp_path, stdout)
