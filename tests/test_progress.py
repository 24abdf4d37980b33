"""Progress a person can read: on a terminal a bar with log lines above it, never through
it, and failures counted (``failed=N``); elsewhere whole status lines, never a bar's frames.

The terminal is a real pseudo-terminal, and what it shows is worked out from the bytes
it got (carriage returns and newlines), as a terminal would.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from runner_helpers import (
    RUN_TIMEOUT,
    parse_output,
    run_in_terminal,
    run_runner,
    screen_lines,
    write_indices,
)

RECORDS = 300
# A console log line as the runner writes it: "12:34:56 [info   ] cleaning record=7 ...".
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d \[info {3}\] cleaning record=(\d+) ")
BAR_END = f"{RECORDS}/{RECORDS}"


def _assert_logs_above_one_bar(screen: list[str], records: int) -> str:
    """Every log line whole, on a line of its own; the bar only once, last. Returns the bar."""
    *logs, bar = screen
    shown = []
    for line in logs:
        match = LOG_LINE.match(line)
        assert match is not None and "|" not in line, f"a broken line: {line!r}"
        shown.append(int(match[1]))
    assert sorted(shown) == list(range(records))
    return bar


@pytest.mark.parametrize("progress", [["--progress"], []])
def test_a_terminal_shows_logs_above_the_bar(tmp_path: Path, progress: list[str]) -> None:
    """A job that logs every record: each line whole above the bar, the bar at the bottom
    at the end with the failures counted (by default too: stderr is a terminal)."""
    write_indices(tmp_path, RECORDS)
    returncode, output = run_in_terminal(
        tmp_path,
        "runner_jobs:log_then_fail_on_odd",
        "--input",
        "in.jsonl",
        "--output",
        "out.jsonl",
        *progress,
    )
    screen = [line for line in screen_lines(output) if line]
    assert returncode == 1, "\n".join(screen)
    summary = screen.pop()  # the one line a failed run ends with, below the bar
    assert summary.startswith(f"minipool: {RECORDS // 2} of {RECORDS} records failed")
    bar = _assert_logs_above_one_bar(screen, RECORDS)
    assert BAR_END in bar and "100%" in bar, bar
    assert f"failed={RECORDS // 2}" in bar, bar


def test_without_a_terminal_progress_is_whole_status_lines(tmp_path: Path) -> None:
    """--progress with stderr a pipe: no bar frames (no carriage return); a whole status line
    at the end that counts the failures."""
    write_indices(tmp_path, 20)
    done = run_runner(
        tmp_path,
        "runner_jobs:fail_on_odd",
        "--input",
        "in.jsonl",
        "--output",
        "o.jsonl",
        "--progress",
    )
    assert done.returncode == 1, done.stderr
    assert "\r" not in done.stderr
    status = [line for line in done.stderr.splitlines() if line.startswith("minipool: 20/20")]
    assert len(status) == 1, done.stderr
    assert "records done, 10 failed" in status[0]


@pytest.mark.parametrize("flag", ["--no-progress", None])
def test_no_progress_without_asking_or_a_terminal(tmp_path: Path, flag: str | None) -> None:
    """--no-progress, or by default where stderr is not a terminal: nothing of progress."""
    write_indices(tmp_path, 5)
    done = run_runner(tmp_path, "runner_jobs:echo", "--input", "in.jsonl", *filter(None, [flag]))
    assert done.returncode == 0, done.stderr
    assert parse_output(done.stdout) == [{"index": i, "result": i} for i in range(5)]
    assert done.stderr == ""


MAP_SCRIPT = textwrap.dedent(
    """
    import minipool

    def fail_on_odd(x):
        if x % 2:
            raise ValueError(x)
        return x

    if __name__ == "__main__":
        with minipool.Pool(2) as pool:
            list(pool.map(fail_on_odd, range(300), return_exceptions=True, progress=True))
    """
)


@pytest.mark.parametrize("terminal", [True, False])
def test_map_progress_counts_failures(tmp_path: Path, terminal: bool) -> None:
    """map(progress=True): on a terminal a bar ending at 300/300 with failed=150; elsewhere
    a status line saying so."""
    (tmp_path / "mapping.py").write_text(MAP_SCRIPT)
    command = [sys.executable, "mapping.py"]
    if terminal:
        returncode, output = run_in_terminal(tmp_path, command=command)
        (bar,) = [line for line in screen_lines(output) if line]
        assert returncode == 0, output
        assert "300/300" in bar and "failed=150" in bar, bar
    else:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr.startswith("minipool: 300/300 jobs done, 150 failed"), done.stderr
        assert "\r" not in done.stderr
