"""A small chaos soak (benchmarks/soak.py): kills and hangs at random; no outcome is lost."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import soak  # the benchmark's own soak, run small


def test_chaos_soak_loses_nothing_and_never_hangs(start_method: str) -> None:
    """1 000 jobs; each run kills its worker with p=0.02 or hangs with p=0.01; retries=3
    (about 20 kills and 10 timeouts a run; benchmarks/soak.py runs the long soak).

    Every job gets exactly one outcome, results are right, nothing hangs; with
    three retries nearly every job succeeds.
    """
    report = soak.soak(
        1_000,
        kill_rate=0.02,
        hang_rate=0.01,
        timeout=0.2,
        retries=3,
        start_method=start_method,
        deadline=120,
    )
    assert not report.hung
    assert report.lost == 0
    assert report.wrong == 0
    assert report.correct >= 995
    assert set(report.errors) <= {"WorkerCrashed", "TaskTimeout"}
    assert report.worker_restarts > 0
    # Every worker death was pinned on one job, which then ran again or failed.
    assert report.retried + sum(report.errors.values()) == report.worker_restarts
