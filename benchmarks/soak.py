"""Chaos soak: many jobs, some of which kill their worker or hang; nothing may be lost.

    python benchmarks/soak.py [--jobs 50000] [--workers 2] [--kill-rate 0.02]
                              [--hang-rate 0.01] [--timeout 0.2] [--retries 3]
                              [--start-method fork]

Every run of a job has a ``--kill-rate`` chance to SIGKILL its worker and a
``--hang-rate`` chance to hang past ``task_timeout``. With ``retries`` the
pool should still deliver nearly every result; whatever it cannot deliver
must come back as ``WorkerCrashed`` or ``TaskTimeout``, never as silence. The
script prints jobs submitted, correct results, errors by type, hangs, lost
outcomes, worker restarts and throughput as a ratio to the same run without
faults. ``tests/test_soak.py`` runs a small version of it.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tasks

import minipool

# A soak that has not finished by then has hung: that is a finding to report,
# not a reason to wait forever.
DEADLINE_SECONDS = 1800


@dataclass(frozen=True)
class SoakReport:
    submitted: int
    correct: int
    wrong: int
    errors: dict[str, int]
    hung: bool
    seconds: float
    worker_restarts: int
    retried: int

    @property
    def lost(self) -> int:
        """Jobs with no outcome at all: the number that must be 0."""
        return self.submitted - self.correct - self.wrong - sum(self.errors.values())


def soak(
    jobs: int,
    *,
    workers: int = 2,
    kill_rate: float = 0.02,
    hang_rate: float = 0.01,
    timeout: float = 0.2,
    retries: int = 3,
    start_method: str = "fork",
    deadline: float = DEADLINE_SECONDS,
) -> SoakReport:
    """Map ``tasks.chaos`` over ``range(jobs)`` and account for every outcome."""
    correct = wrong = 0
    errors: Counter[str] = Counter()
    finished = threading.Event()
    began = time.perf_counter()
    with minipool.Pool(
        workers, start_method=start_method, task_timeout=timeout, retries=retries
    ) as pool:
        watchdog = threading.Timer(deadline, pool.stop)  # a hang still ends, and shows
        watchdog.start()
        try:
            results = pool.map(
                tasks.chaos,
                range(jobs),
                [kill_rate] * jobs,
                [hang_rate] * jobs,
                return_exceptions=True,
            )
            for x, result in enumerate(results):
                if isinstance(result, BaseException):
                    errors[type(result).__name__] += 1
                elif result == x * x:
                    correct += 1
                else:
                    wrong += 1
            finished.set()
        finally:
            watchdog.cancel()
        stats = pool.stats
    return SoakReport(
        submitted=jobs,
        correct=correct,
        wrong=wrong,
        errors=dict(errors),
        hung=not finished.is_set() or errors.get("CancelledError", 0) > 0,
        seconds=time.perf_counter() - began,
        worker_restarts=stats.worker_restarts,
        retried=stats.retried,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-rate", type=float, default=0.02)
    parser.add_argument("--hang-rate", type=float, default=0.01)
    parser.add_argument("--timeout", type=float, default=0.2, help="task_timeout, seconds")
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--start-method", default="fork")
    args = parser.parse_args()
    common = {"workers": args.workers, "start_method": args.start_method}
    print(
        f"soak: {args.jobs:,} jobs, {args.workers} workers, {args.start_method}; each run "
        f"kills its worker with p={args.kill_rate}, hangs with p={args.hang_rate}; "
        f"task_timeout={args.timeout} s, retries={args.retries}"
    )
    calm = soak(args.jobs, kill_rate=0.0, hang_rate=0.0, timeout=args.timeout, **common)
    chaos = soak(
        args.jobs,
        kill_rate=args.kill_rate,
        hang_rate=args.hang_rate,
        timeout=args.timeout,
        retries=args.retries,
        **common,
    )
    print(f"  jobs submitted     {chaos.submitted:,}")
    print(f"  correct results    {chaos.correct:,}")
    print(f"  wrong results      {chaos.wrong:,}")
    print(f"  errors by type     {chaos.errors or 'none'}")
    print(f"  hangs              {int(chaos.hung)}")
    print(f"  lost outcomes      {chaos.lost}")
    print(f"  worker restarts    {chaos.worker_restarts:,}")
    print(f"  retries            {chaos.retried:,}")
    print(
        f"  throughput         {chaos.submitted / chaos.seconds:,.0f} jobs/s with faults, "
        f"{calm.submitted / calm.seconds:,.0f} without: "
        f"{calm.seconds / chaos.seconds:.3f}x"
    )
    ok = not chaos.hung and chaos.lost == 0 and chaos.wrong == 0
    print("  result             " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
