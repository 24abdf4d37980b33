"""Running ``python -m minipool run`` as a real subprocess, and reading what it wrote.

Shared by the runner's test modules. The runner runs in the test's tmp_path,
on job functions from tests/runner_jobs.py (``runner_jobs:NAME``, with tests/
on PYTHONPATH). Records are their own index, so the jobs' call log
(``RUNNER_JOBS_DIR/calls``, one ``"index pid"`` line per call) tells which
records ran, and in which worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parent
# The most any one runner may take; a passing one takes well under a second or two.
RUN_TIMEOUT = 30

JSONL_TEXT = '1\n"two"\n\n  \n{"three": [3]}\nnull\n[4, "x"]'
JSONL_RECORDS = [1, "two", {"three": [3]}, None, [4, "x"]]
CSV_TEXT = 'name,n\na,1\n"b, c",2\n'
CSV_RECORDS = [{"name": "a", "n": "1"}, {"name": "b, c", "n": "2"}]
LINES_TEXT = 'alpha\n  beta \n\n{"x": 1}\ngamma'
LINES_RECORDS = ["alpha", "  beta ", "", '{"x": 1}', "gamma"]


# ---- running the runner ------------------------------------------------------------


def runner_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
    env["RUNNER_JOBS_DIR"] = str(tmp_path)
    return env


def runner_command(*args: str) -> list[str]:
    """``python -m minipool run ARGS``, with 2 fork workers unless ARGS say otherwise."""
    options = list(args)
    if "--workers" not in options:
        options += ["--workers", "2"]
    if "--start-method" not in options:
        options += ["--start-method", "fork"]
    return [sys.executable, "-m", "minipool", "run", *options]


def run_runner(
    tmp_path: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the runner to the end in ``tmp_path``; ``stdin`` is its standard input (else none)."""
    feed: dict[str, Any] = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run(
        runner_command(*args),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        cwd=tmp_path,
        env=runner_env(tmp_path),
        **feed,
    )


def start_runner(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """Start the runner in a process group of its own, as a terminal would."""
    return subprocess.Popen(
        runner_command(*args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=runner_env(tmp_path),
        start_new_session=True,
    )


def stop_runner(runner: subprocess.Popen[str]) -> None:
    """SIGKILL the runner's whole group if it is still running, and reap it."""
    if runner.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(runner.pid, signal.SIGKILL)
    runner.communicate(timeout=RUN_TIMEOUT)


# ---- inputs and outputs --------------------------------------------------------------


def write_indices(tmp_path: Path, count: int, name: str = "in.jsonl") -> Path:
    """A jsonl input whose records are 0 .. count-1."""
    path = tmp_path / name
    path.write_text("".join(f"{i}\n" for i in range(count)))
    return path


def parse_output(text: str) -> list[dict[str, Any]]:
    """The runner's output lines: whole lines, each one JSON object, "index" first."""
    assert text == "" or text.endswith("\n"), f"a partial last line: {text[-200:]!r}"
    lines = []
    for line in text.split("\n")[:-1]:
        parsed = json.loads(line)
        assert list(parsed) in (["index", "result"], ["index", "error"]), line
        if "error" in parsed:
            assert {"type", "message", "traceback"} <= set(parsed["error"]), line
        lines.append(parsed)
    return lines


def read_output(path: Path) -> list[dict[str, Any]]:
    return parse_output(path.read_text())


def ok_line(index: int, result: Any) -> dict[str, Any]:
    return {"index": index, "result": result}


def newest_lines(lines: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The line that counts for each index: its last."""
    return {line["index"]: line for line in lines}


def job_calls(tmp_path: Path) -> list[tuple[int, int]]:
    """(record, worker pid) for each call the jobs logged, in the order they were logged."""
    path = tmp_path / "calls"
    if not path.exists():
        return []
    return [
        (int(x), int(pid))
        for x, pid in (line.split() for line in path.read_text().split("\n")[:-1])
    ]


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def stderr_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


# ---- a real terminal ---------------------------------------------------------------------


def run_in_terminal(
    tmp_path: Path, *args: str, command: list[str] | None = None, columns: int = 100
) -> tuple[int, str]:
    """Run the runner on ``args`` (or ``command``) with its stderr on a pseudo-terminal of
    ``columns`` columns, stdout and stdin not; its exit status, and what the terminal got."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    try:
        runner = subprocess.Popen(
            command or runner_command(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=follower,
            cwd=tmp_path,
            env=runner_env(tmp_path),
        )
        os.close(follower)
        follower = -1
        received = bytearray()
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: every process holding the terminal closed it
                break
            if not data:
                break
            received += data
        returncode = runner.wait(timeout=RUN_TIMEOUT)
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    return returncode, received.decode("utf-8", "replace")


def screen_lines(output: str) -> list[str]:
    """The lines a terminal shows for ``output``: a carriage return goes back to the start
    of the line, later text overwrites earlier (enough for tqdm's one bar)."""
    output = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output)  # cursor and colour codes
    lines: list[list[str]] = [[]]
    column = 0
    for char in output:
        if char == "\n":
            lines.append([])
            column = 0
        elif char == "\r":
            column = 0
        else:
            line = lines[-1]
            if column < len(line):
                line[column] = char
            else:
                line.append(char)
            column += 1
    return ["".join(line).rstrip() for line in lines]
