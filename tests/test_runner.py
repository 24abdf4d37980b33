"""``python -m minipool run``: the command-line runner, run as a real subprocess.

Each test runs the runner in a fresh interpreter, in the test's tmp_path, on
job functions from tests/runner_jobs.py (imported as ``runner_jobs:NAME``, with
tests/ on PYTHONPATH) or from a file the test writes. Records are their own
index, so the jobs' call log (``RUNNER_JOBS_DIR/calls``, one ``"index pid"``
line per call) tells which records ran, and in which worker.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import gone, wait_for
from runner_helpers import (
    CSV_RECORDS,
    CSV_TEXT,
    JSONL_RECORDS,
    JSONL_TEXT,
    LINES_RECORDS,
    LINES_TEXT,
    RUN_TIMEOUT,
    job_calls,
    line_count,
    newest_lines,
    ok_line,
    parse_output,
    read_output,
    run_runner,
    runner_env,
    start_runner,
    stderr_lines,
    stop_runner,
    write_indices,
)

from minipool._runner import records as _records

# ---- inputs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "options", "records"),
    [
        ("data.jsonl", JSONL_TEXT, [], JSONL_RECORDS),
        ("data.ndjson", JSONL_TEXT, [], JSONL_RECORDS),
        ("data.json", JSONL_TEXT, [], JSONL_RECORDS),
        ("data.csv", CSV_TEXT, [], CSV_RECORDS),
        ("data.txt", LINES_TEXT, [], LINES_RECORDS),
        ("data", LINES_TEXT, [], LINES_RECORDS),
        ("data.txt", JSONL_TEXT, ["--format", "jsonl"], JSONL_RECORDS),
        ("data.dat", CSV_TEXT, ["--format", "csv"], CSV_RECORDS),
        ("data.jsonl", JSONL_TEXT, ["--format", "lines"], JSONL_TEXT.split("\n")),
        ("crlf.txt", "a\r\nb\r\n", [], ["a", "b"]),
    ],
    ids=[
        "jsonl",
        "ndjson",
        "json",
        "csv",
        "txt-lines",
        "no-extension-lines",
        "format-jsonl",
        "format-csv",
        "format-lines",
        "crlf-lines",
    ],
)
def test_each_format_from_a_file(
    tmp_path: Path, name: str, text: str, options: list[str], records: list[Any]
) -> None:
    """jsonl (blank lines skipped), csv (dicts) and lines (no line ending), by extension or flag."""
    (tmp_path / name).write_text(text)
    done = run_runner(
        tmp_path, "runner_jobs:echo", "--input", name, "--output", "out.jsonl", *options
    )
    assert done.returncode == 0, done.stderr
    assert read_output(tmp_path / "out.jsonl") == [ok_line(i, r) for i, r in enumerate(records)]
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("name", "text", "records"),
    [
        ("in.csv", "\ufeffname,n\nada,1\n", [{"name": "ada", "n": "1"}]),
        ("in.jsonl", '\ufeff{"a": 1}\n2\n', [{"a": 1}, 2]),
        ("in.txt", "\ufeffone\n", ["one"]),
    ],
    ids=["csv", "jsonl", "lines"],
)
@pytest.mark.parametrize("source", ["file", "stdin"])
def test_a_byte_order_mark_is_dropped(
    tmp_path: Path, name: str, text: str, records: list[Any], source: str
) -> None:
    """A UTF-8 byte-order mark (Excel writes one) starts no key and no record."""
    fmt = name.rpartition(".")[2].replace("txt", "lines")
    if source == "file":
        (tmp_path / name).write_text(text, encoding="utf-8")
        done = run_runner(tmp_path, "runner_jobs:echo", "--input", name, "--output", "out.jsonl")
        lines = read_output(tmp_path / "out.jsonl")
    else:
        done = run_runner(tmp_path, "runner_jobs:echo", "--format", fmt, stdin=text)
        lines = parse_output(done.stdout)
    assert done.returncode == 0, done.stderr
    assert lines == [ok_line(i, r) for i, r in enumerate(records)]


def test_a_csv_field_may_be_as_long_as_a_line(tmp_path: Path) -> None:
    """A 1 MiB field (csv's own limit is 128 KiB) is a field, not a malformed record."""
    long = "x" * (1 << 20)
    (tmp_path / "in.csv").write_text(f"text,n\n{long},1\n")
    done = run_runner(tmp_path, "runner_jobs:echo", "--input", "in.csv", "--output", "out.jsonl")
    assert done.returncode == 0, done.stderr
    assert read_output(tmp_path / "out.jsonl") == [ok_line(0, {"text": long, "n": "1"})]


@pytest.mark.parametrize(
    ("options", "text", "records"),
    [
        (["--input", "-"], LINES_TEXT, LINES_RECORDS),
        ([], LINES_TEXT, LINES_RECORDS),
        (["--format", "jsonl"], JSONL_TEXT, JSONL_RECORDS),
    ],
    ids=["input-dash", "no-input", "format-jsonl"],
)
def test_stdin_to_stdout(tmp_path: Path, options: list[str], text: str, records: list[Any]) -> None:
    """No --input (or ``-``): records come from stdin, as lines unless told; out to stdout."""
    done = run_runner(tmp_path, "runner_jobs:echo", *options, stdin=text)
    assert done.returncode == 0, done.stderr
    assert parse_output(done.stdout) == [ok_line(i, r) for i, r in enumerate(records)]


def test_jobs_printing_do_not_break_the_output(tmp_path: Path) -> None:
    """A job that prints to stdout does not put its text among the JSON lines on stdout."""
    done = run_runner(tmp_path, "runner_jobs:chatty", "--format", "jsonl", stdin="0\n1\n2\n")
    assert done.returncode == 0, done.stderr
    assert parse_output(done.stdout) == [ok_line(i, i) for i in range(3)]


# ---- failures ------------------------------------------------------------------------


def test_failures_are_error_lines_and_exit_1(tmp_path: Path) -> None:
    """Exceptions become error lines (type, message, worker traceback); one summary line; exit 1."""
    write_indices(tmp_path, 6)
    done = run_runner(
        tmp_path, "runner_jobs:fail_on_odd", "--input", "in.jsonl", "--output", "out.jsonl"
    )
    assert done.returncode == 1, done.stderr
    lines = read_output(tmp_path / "out.jsonl")
    assert [line["index"] for line in lines] == list(range(6))
    for i, line in enumerate(lines):
        if i % 2 == 0:
            assert line == ok_line(i, i * 10)
            continue
        error = line["error"]
        assert (error["type"], error["message"]) == ("ValueError", f"odd: {i}")
        assert "fail_on_odd" in error["traceback"]
        assert f"ValueError: odd: {i}" in error["traceback"]
    [summary] = stderr_lines(done.stderr)
    assert re.search(r"\b3\b", summary), summary
    assert "out.jsonl" in summary
    assert "--resume-failed" in summary


@pytest.mark.parametrize(
    ("name", "text", "results", "malformed"),
    [
        ("in.jsonl", '1\n{"a": \n3\n\n[4\n5\n', {0: 1, 2: 3, 4: 5}, {1: 2, 3: 5}),
        (
            "in.csv",
            "a,b\n1,2\n3\n4,5,6\n7,8\n",
            {0: {"a": "1", "b": "2"}, 3: {"a": "7", "b": "8"}},
            {1: 3, 2: 4},
        ),
    ],
    ids=["jsonl", "csv"],
)
def test_malformed_records(
    tmp_path: Path, name: str, text: str, results: dict[int, Any], malformed: dict[int, int]
) -> None:
    """A broken JSON line or a CSV row with the wrong field count: MalformedRecord, "line N: "."""
    (tmp_path / name).write_text(text)
    done = run_runner(tmp_path, "runner_jobs:echo", "--input", name, "--output", "out.jsonl")
    assert done.returncode == 1, done.stderr
    lines = read_output(tmp_path / "out.jsonl")
    assert [line["index"] for line in lines] == sorted([*results, *malformed])
    for line in lines:
        index = line["index"]
        if index in results:
            assert line == ok_line(index, results[index])
        else:
            assert line["error"]["type"] == "MalformedRecord"
            assert line["error"]["message"].startswith(f"line {malformed[index]}: "), line


def test_unserializable_result(tmp_path: Path) -> None:
    """A result json cannot encode is an UnserializableResult error; the others are results."""
    write_indices(tmp_path, 3)
    done = run_runner(tmp_path, "runner_jobs:unserializable_on_1", "--input", "in.jsonl")
    assert done.returncode == 1, done.stderr
    lines = parse_output(done.stdout)
    assert lines[0] == ok_line(0, 0) and lines[2] == ok_line(2, 2)
    assert lines[1]["index"] == 1 and lines[1]["error"]["type"] == "UnserializableResult"


@pytest.mark.parametrize(
    ("job", "records", "options", "error_type"),
    [
        ("runner_jobs:crash_on_2", "0\n1\n2\n3\n4\n", (), "WorkerCrashed"),
        ("runner_jobs:block_on_slow", '0\n1\n"slow"\n3\n4\n', ("--timeout", "0.5"), "TaskTimeout"),
    ],
    ids=["worker-crash", "timeout"],
)
def test_one_record_fails_alone(
    tmp_path: Path, job: str, records: str, options: tuple[str, ...], error_type: str
) -> None:
    """Record 2 kills its worker, or runs past --timeout: it alone gets that error line."""
    (tmp_path / "in.jsonl").write_text(records)
    done = run_runner(tmp_path, job, "--input", "in.jsonl", *options)
    assert done.returncode == 1, done.stderr
    lines = parse_output(done.stdout)
    assert [line["index"] for line in lines] == list(range(5))
    assert lines[2]["error"]["type"] == error_type
    assert [line for line in lines if line["index"] != 2] == [ok_line(i, i) for i in (0, 1, 3, 4)]


def test_retries(tmp_path: Path) -> None:
    """--retries 1: a record that fails once runs again and succeeds; exit 0."""
    write_indices(tmp_path, 4)
    done = run_runner(
        tmp_path, "runner_jobs:fail_first_time", "--input", "in.jsonl", "--retries", "1"
    )
    assert done.returncode == 0, done.stderr
    assert parse_output(done.stdout) == [ok_line(i, i) for i in range(4)]
    assert sorted(x for x, _ in job_calls(tmp_path)) == [0, 0, 1, 1, 2, 2, 3, 3]


# ---- interruption and resume ---------------------------------------------------------

SLOW_RECORDS = 200


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["SIGINT-to-group", "SIGTERM-to-runner"],
)
def test_signal_stops_the_run_and_resume_finishes_it(
    tmp_path: Path, signum: int, to_group: bool
) -> None:
    """A signal mid-run: whole lines, one hint on stderr, exit 130; --resume runs only the rest."""
    write_indices(tmp_path, SLOW_RECORDS)
    output = tmp_path / "out.jsonl"
    args = ("runner_jobs:logged_slow", "--input", "in.jsonl", "--output", "out.jsonl")
    runner = start_runner(tmp_path, *args)
    try:
        assert wait_for(lambda: line_count(output) >= 10, timeout=20)
        if to_group:
            os.killpg(runner.pid, signum)
        else:
            os.kill(runner.pid, signum)
        _, stderr = runner.communicate(timeout=RUN_TIMEOUT)
    finally:
        stop_runner(runner)
    assert runner.returncode == 130, stderr
    assert "Traceback" not in stderr
    [hint] = stderr_lines(stderr)
    assert "--resume" in hint
    first = read_output(output)
    finished = [line["index"] for line in first]
    assert first == [ok_line(i, i) for i in finished]  # no record was failed by the signal
    assert len(set(finished)) == len(finished) < SLOW_RECORDS
    calls_before = job_calls(tmp_path)
    workers = {pid for _, pid in calls_before}
    assert wait_for(lambda: all(gone(pid) for pid in workers), timeout=10)

    done = run_runner(tmp_path, *args, "--resume")
    assert done.returncode == 0, done.stderr
    lines = read_output(output)
    assert lines[: len(first)] == first
    assert sorted(line["index"] for line in lines) == list(range(SLOW_RECORDS))
    assert all(line == ok_line(line["index"], line["index"]) for line in lines)
    rerun = [x for x, _ in job_calls(tmp_path)[len(calls_before) :]]
    assert sorted(rerun) == sorted(set(range(SLOW_RECORDS)) - set(finished))


def test_second_signal_stops_at_once(tmp_path: Path) -> None:
    """A second SIGINT while a record hangs: exit 130 at once, finished lines kept, it resumes."""
    write_indices(tmp_path, 6)
    output = tmp_path / "out.jsonl"
    args = ("runner_jobs:first_waits_for_release", "--input", "in.jsonl", "--output", "out.jsonl")
    runner = start_runner(tmp_path, *args, "--unordered")
    try:
        assert wait_for(lambda: line_count(output) == 5, timeout=20)  # all but record 0
        os.killpg(runner.pid, signal.SIGINT)
        # Signals do not queue: two SIGINTs sent back to back can arrive as one.
        # Half a second apart (a bounded wait that must not end early) they are two.
        wait_for(lambda: runner.poll() is not None, timeout=0.5)
        os.killpg(runner.pid, signal.SIGINT)
        _, stderr = runner.communicate(timeout=5)  # well before record 0 would give up
    finally:
        stop_runner(runner)
    assert runner.returncode == 130, stderr
    assert "Traceback" not in stderr
    [hint] = stderr_lines(stderr)
    assert "--resume" in hint
    assert sorted(line["index"] for line in read_output(output)) == [1, 2, 3, 4, 5]
    workers = {pid for _, pid in job_calls(tmp_path)}
    assert wait_for(lambda: all(gone(pid) for pid in workers), timeout=10)

    (tmp_path / "release").touch()
    calls_before = len(job_calls(tmp_path))
    done = run_runner(tmp_path, *args, "--resume")
    assert done.returncode == 0, done.stderr
    assert [x for x, _ in job_calls(tmp_path)[calls_before:]] == [0]
    assert sorted(line["index"] for line in read_output(output)) == list(range(6))


def test_resume_failed_reruns_only_the_failures(tmp_path: Path) -> None:
    """--resume-failed runs again exactly the records whose line is an error; then none."""
    write_indices(tmp_path, 10)
    switch = tmp_path / "fail-switch"
    switch.touch()
    args = ("runner_jobs:fail_odd_while_switched", "--input", "in.jsonl", "--output", "out.jsonl")
    first = run_runner(tmp_path, *args)
    assert first.returncode == 1, first.stderr
    switch.unlink()
    calls_before = len(job_calls(tmp_path))
    assert calls_before == 10

    second = run_runner(tmp_path, *args, "--resume-failed")
    assert second.returncode == 0, second.stderr
    assert sorted(x for x, _ in job_calls(tmp_path)[calls_before:]) == [1, 3, 5, 7, 9]
    assert newest_lines(read_output(tmp_path / "out.jsonl")) == {
        i: ok_line(i, i) for i in range(10)
    }

    third = run_runner(tmp_path, *args, "--resume-failed")
    assert third.returncode == 0, third.stderr
    assert len(job_calls(tmp_path)) == calls_before + 5


def test_resume_failed_goes_by_the_newest_line(tmp_path: Path) -> None:
    """An index's newest line decides: error-then-result is done, result-then-error runs again;
    then the output holds only the newest line of each record."""
    write_indices(tmp_path, 5)
    error = {"type": "ValueError", "message": "earlier", "traceback": "..."}
    written = [
        {"index": 0, "error": error},
        ok_line(1, 1),
        ok_line(0, 0),
        {"index": 1, "error": error},
        ok_line(2, 2),
        {"index": 3, "error": error},
    ]
    (tmp_path / "out.jsonl").write_text("".join(json.dumps(line) + "\n" for line in written))
    done = run_runner(
        tmp_path,
        "runner_jobs:logged",
        "--input",
        "in.jsonl",
        "--output",
        "out.jsonl",
        "--resume-failed",
    )
    assert done.returncode == 0, done.stderr
    assert sorted(x for x, _ in job_calls(tmp_path)) == [1, 3, 4]
    # One line per record, its newest: the old lines that still count, then the new.
    expected = [ok_line(0, 0), ok_line(2, 2), ok_line(1, 1), ok_line(3, 3), ok_line(4, 4)]
    assert read_output(tmp_path / "out.jsonl") == expected


def test_resume_of_a_complete_output_runs_nothing(tmp_path: Path) -> None:
    """--resume when every index has a line: no call, the output unchanged, exit 0."""
    write_indices(tmp_path, 5)
    args = ("runner_jobs:logged", "--input", "in.jsonl", "--output", "out.jsonl")
    assert run_runner(tmp_path, *args).returncode == 0
    before = (tmp_path / "out.jsonl").read_text()
    calls = job_calls(tmp_path)
    done = run_runner(tmp_path, *args, "--resume")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.jsonl").read_text() == before
    assert job_calls(tmp_path) == calls


# ---- options -------------------------------------------------------------------------


def test_unordered_output_has_every_index_once(tmp_path: Path) -> None:
    """--unordered: every index exactly once, each with its own result."""
    write_indices(tmp_path, 30)
    done = run_runner(tmp_path, "runner_jobs:echo", "--input", "in.jsonl", "--unordered")
    assert done.returncode == 0, done.stderr
    lines = parse_output(done.stdout)
    assert sorted(line["index"] for line in lines) == list(range(30))
    assert all(line == ok_line(line["index"], line["index"]) for line in lines)


@pytest.mark.parametrize(("init", "base"), [("init_generator", 1000), ("init_plain", 2000)])
def test_init_state_reaches_the_function(tmp_path: Path, init: str, base: int) -> None:
    """--init's value is worker_state() in the job; a generator's teardown runs in each worker."""
    write_indices(tmp_path, 6)
    done = run_runner(
        tmp_path, "runner_jobs:add_base", "--input", "in.jsonl", "--init", f"runner_jobs:{init}"
    )
    assert done.returncode == 0, done.stderr
    assert parse_output(done.stdout) == [ok_line(i, base + i) for i in range(6)]
    if init == "init_generator":
        inits = {path.name.split("-")[1] for path in tmp_path.glob("init-*")}
        teardowns = {path.name.split("-")[1] for path in tmp_path.glob("teardown-*")}
        assert inits and teardowns == inits


FILE_JOBS = textwrap.dedent(
    """
    import minipool

    OFFSET = 1


    def init():
        yield 100


    def _helper(x):
        return 3 * x + OFFSET


    def triple(x):
        return _helper(x) + minipool.worker_state()
    """
)


@pytest.mark.parametrize(
    ("start_method", "absolute"),
    [("fork", False), ("spawn", False), ("forkserver", False), ("fork", True)],
)
def test_file_path_targets(tmp_path: Path, start_method: str, absolute: bool) -> None:
    """``path/to/file.py:func`` works for the function and --init, under every start method."""
    jobs = tmp_path / "scripts" / "file_jobs.py"
    jobs.parent.mkdir()
    jobs.write_text(FILE_JOBS)
    path = str(jobs) if absolute else "scripts/file_jobs.py"
    write_indices(tmp_path, 4)
    done = run_runner(
        tmp_path,
        f"{path}:triple",
        "--init",
        f"{path}:init",
        "--input",
        "in.jsonl",
        "--start-method",
        start_method,
    )
    assert done.returncode == 0, done.stderr
    assert parse_output(done.stdout) == [ok_line(i, 3 * i + 101) for i in range(4)]


def test_json_log_file(tmp_path: Path) -> None:
    """--log-format json: one event per get_logger and logging call, from the worker that ran it."""
    write_indices(tmp_path, 6)
    done = run_runner(
        tmp_path,
        "runner_jobs:log_each",
        "--input",
        "in.jsonl",
        "--output",
        "out.jsonl",
        "--log-file",
        "log.jsonl",
        "--log-format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    ran_in = dict(job_calls(tmp_path))
    structured = [event for event in events if event.get("event") == "record done"]
    assert sorted(event["record"] for event in structured) == list(range(6))
    for event in structured:
        assert {"level", "worker_id", "pid", "job_id"} <= set(event), event
        assert event["level"] == "info"
        assert event["pid"] == ran_in[event["record"]] != os.getpid()
    stdlib = [event for event in events if str(event.get("event")).startswith("stdlib record")]
    assert sorted(event["event"] for event in stdlib) == [f"stdlib record {i}" for i in range(6)]
    assert all({"worker_id", "pid"} <= set(event) for event in stdlib)


def test_log_level_and_console_format(tmp_path: Path) -> None:
    """--log-level warning drops the jobs' info events; --log-format console is not JSON."""
    write_indices(tmp_path, 3)
    args = ("runner_jobs:log_each", "--input", "in.jsonl", "--output", "out.jsonl")
    quiet = run_runner(tmp_path, *args, "--log-file", "quiet.log", "--log-level", "warning")
    assert quiet.returncode == 0, quiet.stderr
    assert "record done" not in (tmp_path / "quiet.log").read_text()
    console = run_runner(tmp_path, *args, "--log-file", "console.log", "--log-format", "console")
    assert console.returncode == 0, console.stderr
    lines = [line for line in (tmp_path / "console.log").read_text().splitlines() if line]
    done_lines = [line for line in lines if "record done" in line]
    assert len(done_lines) == 3
    assert not any(line.lstrip().startswith("{") for line in done_lines)


# ---- usage -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["no_such_module_xyz:f"], "no_such_module_xyz"),
        (["missing_file.py:f"], "missing_file.py"),
        (["broken.py:f"], "no_such_dependency_xyz"),
        (["runner_jobs:no_such_function"], "no_such_function"),
        (["runner_jobs:NOT_CALLABLE"], "NOT_CALLABLE"),
        (["runner_jobs"], None),
        (["runner_jobs:echo", "--init", "runner_jobs:no_such_init"], "no_such_init"),
        (["runner_jobs:echo", "--input", "nope.jsonl"], "nope.jsonl"),
        (["runner_jobs:echo", "--resume"], "--output"),
        (["runner_jobs:echo", "--output", "o.jsonl", "--resume", "--resume-failed"], None),
        (["runner_jobs:echo", "--workers", "0"], "--workers"),
        (["runner_jobs:echo", "--format", "xml"], "--format"),
        (["runner_jobs:echo", "--timeout", "-1"], "--timeout"),
        (["runner_jobs:echo", "--retries", "-1"], "--retries"),
        (["runner_jobs:echo", "--log-format", "xml"], "--log-format"),
        (["runner_jobs:echo", "--log-level", "chatty"], "--log-level"),
        (["runner_jobs:echo", "--start-method", "teleport"], "--start-method"),
    ],
)
def test_usage_errors(tmp_path: Path, args: list[str], mentions: str | None) -> None:
    """A bad target, input or option: exit 2, a short message on stderr, no traceback."""
    write_indices(tmp_path, 2)
    (tmp_path / "broken.py").write_text("import no_such_dependency_xyz\n\n\ndef f(x):\n    pass\n")
    if "--input" not in args:
        args = [*args, "--input", "in.jsonl"]
    done = run_runner(tmp_path, *args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("minipool: error:") or (
        done.stderr.startswith("usage:") and "error:" in done.stderr
    ), done.stderr
    if mentions is not None:
        assert mentions in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    "options",
    [["--workers", "2"], ["--start-method", "spawn"]],
)
def test_cluster_refuses_process_options(tmp_path: Path, options: list[str]) -> None:
    """--cluster ADDRESS with --workers or --start-method exits 2 saying why (tests/test_dask.py
    runs the runner on a real cluster)."""
    write_indices(tmp_path, 2)
    command = ["runner_jobs:echo", "--input", "in.jsonl", "--cluster", "tcp://x:1", *options]
    done = subprocess.run(  # not run_runner(), which adds both options
        [sys.executable, "-m", "minipool", "run", *command],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        cwd=tmp_path,
        env=runner_env(tmp_path),
    )
    assert done.returncode == 2, done.stderr
    assert f"{options[0]} cannot be used with --cluster" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_carries_the_security_note(tmp_path: Path) -> None:
    """``run --help`` says the runner imports and runs the code it is given and reads no pickles."""
    done = subprocess.run(
        [sys.executable, "-m", "minipool", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split()).lower()
    assert "usage:" in text
    assert "import" in text and "pickle" in text


def test_no_arguments_prints_usage(tmp_path: Path) -> None:
    """``python -m minipool`` alone prints usage naming the run command."""
    done = subprocess.run(
        [sys.executable, "-m", "minipool"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        cwd=tmp_path,
    )
    assert done.returncode in (0, 2)
    assert "usage:" in (done.stdout + done.stderr).lower()
    assert "run" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_bytes_that_are_not_utf8_do_not_end_the_run(tmp_path: Path) -> None:
    """An input line with bytes that are not UTF-8 is a record like any other; exit 0."""
    (tmp_path / "in.txt").write_bytes(b"ok\n\xff\xfe bad\nlast\n")
    done = run_runner(tmp_path, "runner_jobs:echo", "--input", "in.txt")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = parse_output(done.stdout)
    assert [line["result"] for line in lines] == ["ok", "\udcff\udcfe bad", "last"]


# ---- JSON arrays ----------------------------------------------------------------------

ARRAY_RECORDS: list[Any] = [{"name": "a", "tags": ["x", "y"]}, 2, "three", None, [4, [5]]]


def test_a_json_file_holding_an_array_is_read_as_its_values(tmp_path: Path) -> None:
    """A .json file that is one JSON array (how most JSON is shipped), pretty-printed over
    many lines and longer than one read: each value is a record, in order."""
    many = ARRAY_RECORDS * 4000  # 20,000 values, a few MiB: more than one read of the file
    (tmp_path / "in.json").write_text(json.dumps(many, indent=2))
    done = run_runner(tmp_path, "runner_jobs:echo", "--input", "in.json", "--output", "out.jsonl")
    assert done.returncode == 0, done.stderr
    assert read_output(tmp_path / "out.jsonl") == [ok_line(i, r) for i, r in enumerate(many)]


def test_a_json_array_that_breaks_off_is_a_usage_error_after_the_records_before(
    tmp_path: Path,
) -> None:
    """Past a syntax error nothing more can be read: the records before it run and are
    written, and the run ends with one line naming the input and the line, exit 2."""
    (tmp_path / "in.json").write_text("[\n  1,\n  2,\n  oops\n]\n")
    done = run_runner(tmp_path, "runner_jobs:echo", "--input", "in.json", "--output", "out.jsonl")
    assert done.returncode == 2
    assert read_output(tmp_path / "out.jsonl") == [ok_line(0, 1), ok_line(1, 2)]
    (message,) = done.stderr.strip().splitlines()
    assert "--input in.json: not a JSON array" in message and "(line 4)" in message


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("[]", []),
        (" \n[1, 2]\n", [1, 2]),
        (
            '[12345678901234567890, "long string", {"k": [1, 2]}]',
            [12345678901234567890, "long string", {"k": [1, 2]}],
        ),
        ("[1, 2,]", "Expecting value"),
        ("[1 2]", "expected ',' or ']'"),
        ("[1] [2]", "the text goes on after the array ends"),
        ("[1, 2", "expected ',' or ']'"),
    ],
    ids=["empty", "spaced", "cut-values", "trailing-comma", "no-comma", "two-arrays", "unclosed"],
)
def test_json_arrays_are_read_a_value_at_a_time(
    monkeypatch: pytest.MonkeyPatch, text: str, outcome: Any
) -> None:
    """Read one character at a time (every value cut across reads), arrays give their
    values; broken ones an InputError saying why."""
    monkeypatch.setattr(_records._JsonArray, "CHUNK", 1)
    records = _records.read_records(io.StringIO(text, newline=""), "jsonl")
    if isinstance(outcome, str):
        with pytest.raises(_records.InputError, match=re.escape(outcome)):
            list(records)
    else:
        assert [payload for _, _, _, payload in records] == outcome
