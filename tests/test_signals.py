"""Real signals to a real caller process: its workers never outlive it.

The caller is a script run as a subprocess, so that the test can kill it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import wait_for

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
        pool.submit(busy_forever, os.path.join(directory, "busy"))
        idle = pool.submit(getpid).result(timeout=30)
        print(idle, flush=True)
        time.sleep(600)  # until the test kills this process
    """
)


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie nobody reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


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
        assert wait_for(lambda: _gone(idle) and _gone(busy), timeout=10)
    finally:
        caller.kill()
        caller.wait(timeout=30)
        if caller.stdout is not None:
            caller.stdout.close()
        for pid in workers:  # a failed test must not leave them running
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
