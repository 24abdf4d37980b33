"""The benchmarks run, and check what they must (smoke runs at tiny scale).

Each runs in a subprocess of its own, as users run it. Their figures are not
checked: timings belong in benchmarks, not tests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_bench_logs_runs_and_counts_every_record(tmp_path: Path) -> None:
    """One small round of every engine: exit 0 (no sample missed a record), a table, JSON."""
    out = tmp_path / "logs.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "bench_logs.py"),
            "--jobs",
            "500",
            "--rounds",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "minipool, logging records" in done.stdout
    assert "minipool, structlog events" in done.stdout
    assert "ERROR" not in done.stdout
    assert out.exists()


def test_bench_runner_runs_and_resume_runs_nothing(tmp_path: Path) -> None:
    """One small round: the runner, the loop and --resume all produce every line; exit 0."""
    out = tmp_path / "runner.json"
    command = [sys.executable, str(BENCHMARKS / "bench_runner.py"), "--records", "2000"]
    done = subprocess.run(
        [*command, "--rounds", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "minipool run --resume" in done.stdout
    assert "ERROR" not in done.stdout
    assert out.exists()
