"""GNU parallel's everyday options, as the runner has them: --halt, --dry-run, --joblog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runner_helpers import (
    job_calls,
    line_count,
    ok_line,
    read_output,
    run_runner,
    stderr_lines,
    write_indices,
)

SWITCHED = ("runner_jobs:fail_odd_while_switched", "--input", "in.jsonl", "--output", "out.jsonl")


# ---- --halt ----------------------------------------------------------------------------


def test_halt_stops_dispatching_and_resume_finishes(tmp_path: Path) -> None:
    """--halt 1: the run stops soon after the first failure (exit 4, whole lines kept, the
    rest not run); --resume-failed then runs the failed and the rest, once each. Records
    of 10 ms keep chunks small, so that the first failure comes back early."""
    records = 200
    write_indices(tmp_path, records)
    (tmp_path / "fail-switch").touch()
    args = ("runner_jobs:slow_fail_odd_while_switched", *SWITCHED[1:])
    halted = run_runner(tmp_path, *args, "--halt", "1")
    assert halted.returncode == 4, halted.stderr
    (message,) = stderr_lines(halted.stderr)
    assert message.startswith("minipool: halted (--halt 1) after ")
    lines = read_output(tmp_path / "out.jsonl")
    assert 0 < len(lines) < records
    assert len({line["index"] for line in lines}) == len(lines)
    ran = len(job_calls(tmp_path))
    assert ran < records
    succeeded = {line["index"] for line in lines if "result" in line}

    (tmp_path / "fail-switch").unlink()
    done = run_runner(tmp_path, *args, "--resume-failed")
    assert done.returncode == 0, done.stderr
    lines = read_output(tmp_path / "out.jsonl")
    assert sorted(lines, key=lambda line: line["index"]) == [ok_line(i, i) for i in range(records)]
    rerun = sorted(x for x, _ in job_calls(tmp_path)[ran:])
    assert rerun == sorted(set(range(records)) - succeeded)


def test_a_halt_once_every_record_ran_is_an_ordinary_end(tmp_path: Path) -> None:
    """--halt reached by the last records, with none left to run: exit 1 as any run with
    failures, a line for each record."""
    write_indices(tmp_path, 2)
    (tmp_path / "fail-switch").touch()
    done = run_runner(tmp_path, *SWITCHED, "--halt", "1", "--workers", "1")
    assert done.returncode == 1, done.stderr
    assert line_count(tmp_path / "out.jsonl") == 2


@pytest.mark.parametrize(("halt", "status"), [("60%", 1), ("40%", 4)])
def test_halt_at_a_fraction_of_those_finished(tmp_path: Path, halt: str, status: int) -> None:
    """Half the records fail: --halt 60% never halts (exit 1, a line for each), 40% does."""
    write_indices(tmp_path, 300)
    (tmp_path / "fail-switch").touch()
    done = run_runner(tmp_path, *SWITCHED, "--halt", halt)
    assert done.returncode == status, done.stderr
    if status == 1:
        assert line_count(tmp_path / "out.jsonl") == 300


@pytest.mark.parametrize("value", ["0", "-1", "abc", "0%", "101%", "1.5"])
def test_bad_halt_values_are_usage_errors(tmp_path: Path, value: str) -> None:
    """--halt takes a count of 1 or more, or a percentage in (0, 100]."""
    write_indices(tmp_path, 2)
    done = run_runner(tmp_path, "runner_jobs:echo", "--input", "in.jsonl", "--halt", value)
    assert done.returncode == 2, done.stderr
    assert "--halt" in done.stderr and "Traceback" not in done.stderr


# ---- --dry-run -----------------------------------------------------------------------------


def test_dry_run_counts_and_runs_nothing(tmp_path: Path) -> None:
    """--dry-run: the records counted, the unreadable ones named by line, nothing run, the
    output untouched (to the byte); exit 1 because some records would fail as malformed."""
    (tmp_path / "in.jsonl").write_text("0\n1\n{broken\n3\n[4,\n5\n")
    # A last line cut off by a kill: a run would cut it off the file, a dry run leaves it.
    (tmp_path / "out.jsonl").write_text(json.dumps(ok_line(0, 0)) + '\n{"index": 1, "re')
    before = (tmp_path / "out.jsonl").read_bytes()
    args = ("runner_jobs:logged", "--input", "in.jsonl", "--output", "out.jsonl", "--dry-run")
    done = run_runner(tmp_path, *args, "--resume")
    assert done.returncode == 1, done.stderr
    (message,) = stderr_lines(done.stderr)
    assert "5 records would run (1 done in out.jsonl are skipped)" in message
    assert "2 of them cannot be read (lines 3, 5)" in message
    assert "Nothing ran" in message
    assert job_calls(tmp_path) == []
    assert (tmp_path / "out.jsonl").read_bytes() == before


def test_dry_run_of_a_clean_input_exits_0_and_writes_nothing(tmp_path: Path) -> None:
    """--dry-run over good records: exit 0, no output file made."""
    write_indices(tmp_path, 7)
    done = run_runner(
        tmp_path, "runner_jobs:logged", "--input", "in.jsonl", "--output", "out.jsonl", "--dry-run"
    )
    assert done.returncode == 0, done.stderr
    assert "7 records would run." in done.stderr
    assert not (tmp_path / "out.jsonl").exists()
    assert job_calls(tmp_path) == []


def test_dry_run_still_checks_the_target(tmp_path: Path) -> None:
    """A target that does not import is the same usage error in a dry run."""
    write_indices(tmp_path, 2)
    done = run_runner(tmp_path, "runner_jobs:no_such_function", "--input", "in.jsonl", "--dry-run")
    assert done.returncode == 2, done.stderr
    assert "no_such_function" in done.stderr


# ---- --joblog ----------------------------------------------------------------------------


def _joblog(path: Path) -> list[dict[str, str]]:
    header, *rows = path.read_text().splitlines()
    names = header.split("\t")
    assert names == ["index", "start", "runtime", "attempts", "worker", "pid", "outcome"]
    return [dict(zip(names, row.split("\t"), strict=True)) for row in rows]


def test_joblog_has_a_line_per_record(tmp_path: Path) -> None:
    """--joblog: a line per record with its start, runtime, attempt, worker, pid and
    outcome; a retried record says 2 attempts, and its pid is one that ran it."""
    write_indices(tmp_path, 6)
    done = run_runner(
        tmp_path,
        "runner_jobs:fail_first_time",
        "--input",
        "in.jsonl",
        "--output",
        "out.jsonl",
        "--retries",
        "1",
        "--joblog",
        "jobs.tsv",
    )
    assert done.returncode == 0, done.stderr
    rows = _joblog(tmp_path / "jobs.tsv")
    assert sorted(int(row["index"]) for row in rows) == list(range(6))
    pids = {pid for _, pid in job_calls(tmp_path)}
    for row in rows:
        assert row["outcome"] == "ok" and row["attempts"] == "2", row
        assert float(row["start"]) > 0 and float(row["runtime"]) >= 0
        assert int(row["pid"]) in pids and int(row["worker"]) in (0, 1)


def test_joblog_names_errors_and_crashes(tmp_path: Path) -> None:
    """Failed records log their error type; a crashed one its worker, and - for what died
    with it."""
    write_indices(tmp_path, 4)
    args = ("--input", "in.jsonl", "--output", "out.jsonl", "--joblog", "jobs.tsv")
    assert run_runner(tmp_path, "runner_jobs:crash_on_2", *args).returncode == 1
    rows = {int(row["index"]): row for row in _joblog(tmp_path / "jobs.tsv")}
    assert [rows[i]["outcome"] for i in range(4)] == ["ok", "ok", "WorkerCrashed", "ok"]
    assert rows[2]["start"] == rows[2]["runtime"] == "-"
    assert rows[2]["pid"] != "-"


def test_joblog_appends_when_resuming(tmp_path: Path) -> None:
    """A resumed run appends its records to the job log, under the one header."""
    write_indices(tmp_path, 6)
    (tmp_path / "fail-switch").touch()
    assert run_runner(tmp_path, *SWITCHED, "--joblog", "jobs.tsv").returncode == 1
    (tmp_path / "fail-switch").unlink()
    done = run_runner(tmp_path, *SWITCHED, "--joblog", "jobs.tsv", "--resume-failed")
    assert done.returncode == 0, done.stderr
    rows = _joblog(tmp_path / "jobs.tsv")
    assert [row["index"] for row in rows[6:]] == ["1", "3", "5"]
    assert [row["outcome"] for row in rows[6:]] == ["ok"] * 3
