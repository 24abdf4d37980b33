"""benchmarks/bench_logs.py runs, and every record reaches the caller (a smoke run at tiny scale).

It runs in a subprocess of its own: it configures logging in the process it
measures. Its figures are not checked; timings belong in benchmarks, not tests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_logs.py"


def test_bench_logs_runs_and_counts_every_record(tmp_path: Path) -> None:
    """One small round of every engine: exit 0 (no sample missed a record), a table, JSON."""
    out = tmp_path / "logs.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--jobs", "500", "--rounds", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "minipool, logging records" in done.stdout
    assert "minipool, structlog events" in done.stdout
    assert "ERROR" not in done.stdout
    assert out.exists()
