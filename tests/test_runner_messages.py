"""The runner's messages are for a person: error lines name the record (never the pool's job
id), keep the attempts note and start their traceback at the user's code; --init takes
arguments, and an init that fails ends the run in one line with exit 3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runner_helpers import (
    RUN_TIMEOUT,
    ok_line,
    read_output,
    run_runner,
    start_runner,
    stderr_lines,
    stop_runner,
    write_indices,
)

OUT = ("--output", "out.jsonl")


def _resumed_at_5(tmp_path: Path) -> None:
    """10 records, 0 to 4 done already: the pool's job ids then differ from the indices."""
    write_indices(tmp_path, 10)
    (tmp_path / "out.jsonl").write_text("".join(json.dumps(ok_line(i, i)) + "\n" for i in range(5)))


def _error_of(tmp_path: Path, index: int) -> dict[str, str]:
    (line,) = [line for line in read_output(tmp_path / "out.jsonl") if line["index"] == index]
    error: dict[str, str] = line["error"]
    return error


@pytest.mark.parametrize(
    ("job", "options", "says"),
    [
        ("crash_on_7", [], "while running record 7"),
        ("block_on_7", ["--timeout", "0.5"], "record 7 ran longer than --timeout 0.5 s"),
    ],
)
def test_error_lines_name_the_record(
    tmp_path: Path, job: str, options: list[str], says: str
) -> None:
    """A crash or a timeout names the record's index, not the pool's job id."""
    _resumed_at_5(tmp_path)
    done = run_runner(
        tmp_path, f"runner_jobs:{job}", "--input", "in.jsonl", *OUT, "--resume", *options
    )
    assert done.returncode == 1, done.stderr
    message = _error_of(tmp_path, 7)["message"]
    assert says in message
    assert "job" not in message


def test_error_lines_keep_the_attempts_note(tmp_path: Path) -> None:
    """With --retries, a record that failed every time says so in its message."""
    write_indices(tmp_path, 4)
    done = run_runner(
        tmp_path, "runner_jobs:fail_on_odd", "--input", "in.jsonl", *OUT, "--retries", "2"
    )
    assert done.returncode == 1, done.stderr
    message = _error_of(tmp_path, 1)["message"]
    assert message.splitlines() == [
        "odd: 1",
        "minipool: the record failed on each of its 3 attempts; this is the last error",
    ]


def test_tracebacks_start_at_the_users_code(tmp_path: Path) -> None:
    """The stored traceback's first frame is the job function's, not minipool's."""
    write_indices(tmp_path, 2)
    done = run_runner(tmp_path, "runner_jobs:fail_on_odd", "--input", "in.jsonl", *OUT)
    assert done.returncode == 1, done.stderr
    trace = _error_of(tmp_path, 1)["traceback"].splitlines()
    assert trace[0] == "Traceback (most recent call last):"
    assert trace[1].startswith('  File "') and "runner_jobs.py" in trace[1], trace
    assert "minipool" not in "\n".join(trace)
    assert trace[-1] == "ValueError: odd: 1"


# ---- --init and --init-args ------------------------------------------------------------


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_init_args_reach_init(tmp_path: Path, start_method: str) -> None:
    """--init-args '["data.sqlite", 4]' calls init("data.sqlite", 4) in each worker."""
    write_indices(tmp_path, 3)
    done = run_runner(
        tmp_path,
        "runner_jobs:read_init_state",
        "--init",
        "runner_jobs:init_with",
        "--init-args",
        '["data.sqlite", 4]',
        "--input",
        "in.jsonl",
        "--start-method",
        start_method,
        *OUT,
    )
    assert done.returncode == 0, done.stderr
    assert read_output(tmp_path / "out.jsonl") == [
        ok_line(i, ["data.sqlite", 4, i]) for i in range(3)
    ]


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--init-args", "[1]"], "--init-args needs --init"),
        (["--init", "runner_jobs:init_with", "--init-args", '{"path": 1}'], "JSON array"),
        (["--init", "runner_jobs:init_with", "--init-args", "[1,"], "not JSON"),
    ],
)
def test_bad_init_args_are_usage_errors(tmp_path: Path, options: list[str], says: str) -> None:
    """--init-args without --init, or not a JSON array: exit 2 in one line."""
    write_indices(tmp_path, 2)
    done = run_runner(tmp_path, "runner_jobs:echo", "--input", "in.jsonl", *options)
    assert done.returncode == 2, done.stderr
    assert stderr_lines(done.stderr) == [done.stderr.strip()]
    assert says in done.stderr


@pytest.mark.parametrize(
    ("init", "says"),
    [
        ("init_raises", "RuntimeError: no database at /nowhere ("),
        ("init_exits", "exited with code 9 while running init"),
    ],
)
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_failing_init_ends_the_run_in_one_line(
    tmp_path: Path, init: str, says: str, start_method: str
) -> None:
    """An init that raises or dies: exit 3, one line naming --init and how it failed, no lines."""
    write_indices(tmp_path, 200)
    done = run_runner(
        tmp_path,
        "runner_jobs:echo",
        "--init",
        f"runner_jobs:{init}",
        "--input",
        "in.jsonl",
        "--start-method",
        start_method,
        *OUT,
    )
    assert done.returncode == 3, done.stderr
    (line,) = stderr_lines(done.stderr)
    assert line.startswith(f"minipool: error: --init runner_jobs:{init}: ")
    assert says in line
    assert "no record ran" in line
    if init == "init_raises":
        assert "runner_jobs.py, line " in line and "in init_raises)" in line
    assert (tmp_path / "out.jsonl").read_text() == ""


@pytest.mark.parametrize("run", range(3))
def test_a_reader_that_leaves_ends_the_run_quietly(tmp_path: Path, run: int) -> None:
    """stdout piped to a reader that stops early (``| head -1``): exit 141, as a shell
    reports SIGPIPE, no traceback; the rest of the input does not run. (Without stop()
    before the workers were killed, about one run in seven hung on 3.10.)"""
    write_indices(tmp_path, 100_000)
    runner = start_runner(tmp_path, "runner_jobs:echo", "--input", "in.jsonl")
    try:
        assert runner.stdout is not None
        assert json.loads(runner.stdout.readline()) == ok_line(0, 0)
        runner.stdout.close()  # as head does once it has its line
        _, stderr = runner.communicate(timeout=RUN_TIMEOUT)
        assert runner.returncode == 141, stderr
        assert "Traceback" not in stderr
    finally:
        stop_runner(runner)  # a runner that hung is killed, with its workers
