"""The runner's output stays true: one line per record, never over its input, never trusting
lines it did not write; and every path problem is a usage error (exit 2, one line)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from runner_helpers import (
    job_calls,
    line_count,
    ok_line,
    parse_output,
    read_output,
    run_runner,
    stderr_lines,
    write_indices,
)

SWITCHED = ("runner_jobs:fail_odd_while_switched", "--input", "in.jsonl", "--output", "out.jsonl")


def _assert_usage_error(done: subprocess.CompletedProcess[str], *mentions: str) -> None:
    """Exit 2 with one line on stderr that names each of ``mentions``; no traceback."""
    stderr = done.stderr
    assert done.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert len(stderr_lines(stderr)) == 1, stderr
    assert stderr.startswith("minipool: error:"), stderr
    for text in mentions:
        assert text in stderr


# ---- never over the input ------------------------------------------------------------


def _same_file(tmp_path: Path, how: str) -> str:
    """A name for in.jsonl: itself, another spelling, a symbolic link, a hard link."""
    if how == "symlink":
        (tmp_path / "link.jsonl").symlink_to("in.jsonl")
        return "link.jsonl"
    if how == "hard link":
        os.link(tmp_path / "in.jsonl", tmp_path / "link.jsonl")
        return "link.jsonl"
    return {"same name": "in.jsonl", "another spelling": f"{tmp_path}/./in.jsonl"}[how]


@pytest.mark.parametrize("how", ["same name", "another spelling", "symlink", "hard link"])
@pytest.mark.parametrize("flag", ["--output", "--log-file"])
def test_output_may_not_be_the_input(tmp_path: Path, flag: str, how: str) -> None:
    """--output (or --log-file) naming the input, however spelled: exit 2, the input intact."""
    write_indices(tmp_path, 5)
    before = (tmp_path / "in.jsonl").read_bytes()
    done = run_runner(
        tmp_path, "runner_jobs:logged", "--input", "in.jsonl", flag, _same_file(tmp_path, how)
    )
    _assert_usage_error(done, "same file", "--input")
    assert (tmp_path / "in.jsonl").read_bytes() == before
    assert job_calls(tmp_path) == []


def test_log_file_may_not_be_the_output(tmp_path: Path) -> None:
    """--log-file naming the output (which exists): exit 2, the output intact."""
    write_indices(tmp_path, 3)
    (tmp_path / "out.jsonl").write_text("")
    done = run_runner(
        tmp_path,
        "runner_jobs:logged",
        "--input",
        "in.jsonl",
        "--output",
        "out.jsonl",
        "--log-file",
        "out.jsonl",
    )
    _assert_usage_error(done, "same file", "--output")


# ---- one line per record ---------------------------------------------------------------


def test_resume_failed_leaves_one_line_per_record(tmp_path: Path) -> None:
    """After each --resume-failed run, errors left or not: one line per record, its newest."""
    write_indices(tmp_path, 10)
    (tmp_path / "fail-switch").touch()
    assert run_runner(tmp_path, *SWITCHED).returncode == 1

    again = run_runner(tmp_path, *SWITCHED, "--resume-failed")  # still failing
    assert again.returncode == 1, again.stderr
    lines = read_output(tmp_path / "out.jsonl")
    assert sorted(line["index"] for line in lines) == list(range(10))

    (tmp_path / "fail-switch").unlink()
    fixed = run_runner(tmp_path, *SWITCHED, "--resume-failed")
    assert fixed.returncode == 0, fixed.stderr
    lines = read_output(tmp_path / "out.jsonl")
    assert sorted(lines, key=lambda line: line["index"]) == [ok_line(i, i) for i in range(10)]
    assert [line["index"] for line in lines] == [0, 2, 4, 6, 8, 1, 3, 5, 7, 9]


def test_the_rewrite_keeps_the_file_as_it_was(tmp_path: Path) -> None:
    """The output is replaced whole: its mode and a link to it stay, no temporary file is left."""
    write_indices(tmp_path, 6)
    (tmp_path / "fail-switch").touch()
    (tmp_path / "results").mkdir()
    (tmp_path / "out.jsonl").symlink_to("results/real.jsonl")
    assert run_runner(tmp_path, *SWITCHED).returncode == 1
    real = tmp_path / "results" / "real.jsonl"
    real.chmod(0o640)
    (tmp_path / "fail-switch").unlink()

    done = run_runner(tmp_path, *SWITCHED, "--resume-failed")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.jsonl").is_symlink()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(path.name for path in (tmp_path / "results").iterdir()) == ["real.jsonl"]
    assert line_count(real) == 6


def test_resume_exits_1_while_errors_remain(tmp_path: Path) -> None:
    """--resume keeps the error lines of earlier runs: exit 1, and it says how many."""
    write_indices(tmp_path, 6)
    args = ("runner_jobs:fail_on_odd", "--input", "in.jsonl", "--output", "out.jsonl")
    assert run_runner(tmp_path, *args).returncode == 1
    before = (tmp_path / "out.jsonl").read_bytes()
    done = run_runner(tmp_path, *args, "--resume")
    assert done.returncode == 1, done.stderr
    assert "3 of 6 records failed, 3 in earlier runs" in done.stderr
    assert (tmp_path / "out.jsonl").read_bytes() == before


# ---- lines it did not write ---------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        '{"index": -1, "result": 0}',
        '{"index": "3", "result": 0}',
        '{"index": true, "result": 0}',
        '{"index": 2.0, "result": 0}',
        '{"index": 2}',
        '{"index":2,"result":0,"error":{}}',
        '{"result": 0, "index": 2, "note": "mine"}',
        "[2, 0]",
        "not json",
        "",
    ],
)
@pytest.mark.parametrize("flag", ["--resume", "--resume-failed"])
def test_a_line_the_runner_did_not_write_is_reported(tmp_path: Path, flag: str, line: str) -> None:
    """Resuming an output with a foreign or malformed line: exit 2 naming the line, nothing runs.

    ``{"index": -1}`` used to mark record 7 done (a negative index in the bitmap).
    A line that starts exactly as the runner's own do is taken as one, unparsed
    (a resume reads a million lines in 0.4 s so, in 2.7 s parsing each).
    """
    write_indices(tmp_path, 10)
    written = [json.dumps(ok_line(0, 0)), line, json.dumps(ok_line(1, 1))]
    (tmp_path / "out.jsonl").write_text("".join(text + "\n" for text in written))
    before = (tmp_path / "out.jsonl").read_bytes()
    done = run_runner(
        tmp_path, "runner_jobs:logged", "--input", "in.jsonl", "--output", "out.jsonl", flag
    )
    _assert_usage_error(done, "out.jsonl", "line 2")
    assert job_calls(tmp_path) == []
    assert (tmp_path / "out.jsonl").read_bytes() == before


def test_a_line_cut_off_by_a_kill_is_not_foreign(tmp_path: Path) -> None:
    """A last line without its newline (a kill mid-write) is cut off, and its record runs."""
    write_indices(tmp_path, 3)
    (tmp_path / "out.jsonl").write_text(json.dumps(ok_line(0, 0)) + '\n{"index": 1, "res')
    done = run_runner(
        tmp_path, "runner_jobs:logged", "--input", "in.jsonl", "--output", "out.jsonl", "--resume"
    )
    assert done.returncode == 0, done.stderr
    assert sorted(x for x, _ in job_calls(tmp_path)) == [1, 2]
    assert read_output(tmp_path / "out.jsonl") == [ok_line(i, i) for i in range(3)]


# ---- path problems ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "mentions"),
    [
        (["--output", "adir"], "--output adir is a directory"),
        (["--output", "adir", "--resume"], "--output adir is a directory"),
        (["--output", "adir", "--resume-failed"], "--output adir is a directory"),
        (["--log-file", "adir"], "--log-file adir is a directory"),
        (["--output", "missing/out.jsonl"], "missing/out.jsonl"),
        (["--output", "missing/out.jsonl", "--resume"], "missing/out.jsonl"),
        (["--log-file", "missing/log.txt"], "missing/log.txt"),
        (["--input", "adir"], "--input adir"),
        (["--input", "in.jsonl/x"], "in.jsonl/x"),
    ],
)
def test_path_problems_are_usage_errors(tmp_path: Path, options: list[str], mentions: str) -> None:
    """A path that is a directory, or under a missing one: exit 2 in one line, nothing runs."""
    write_indices(tmp_path, 3)
    (tmp_path / "adir").mkdir()
    if "--input" not in options:
        options = [*options, "--input", "in.jsonl"]
    done = run_runner(tmp_path, "runner_jobs:logged", *options)
    _assert_usage_error(done, mentions)
    assert job_calls(tmp_path) == []


# ---- standard output ---------------------------------------------------------------------------


def test_a_target_that_prints_as_it_loads_does_not_break_stdout(tmp_path: Path) -> None:
    """Text a target module (or an init module) prints at import goes to stderr, not
    among the JSON lines on stdout."""
    write_indices(tmp_path, 3)
    (tmp_path / "noisy.py").write_text(
        'print("loading noisy")\n\n\ndef double(x):\n    return 2 * x\n\n\n'
        "def setup():\n    return None\n"
    )
    for start_method in ("fork", "spawn"):
        done = run_runner(
            tmp_path,
            "noisy.py:double",
            "--init",
            "noisy.py:setup",
            "--input",
            "in.jsonl",
            "--start-method",
            start_method,
        )
        assert done.returncode == 0, done.stderr
        assert parse_output(done.stdout) == [ok_line(i, 2 * i) for i in range(3)]
        assert "loading noisy" in done.stderr
