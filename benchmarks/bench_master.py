"""What the caller's process spends to run jobs: CPU per job and per chunk, and the
worker count at which that saturates one core, for minipool and the stdlib pools.

    python benchmarks/bench_master.py [--workers 1 2 4 8 16 32] [--rounds R]
                                      [--start-method fork] [--scale F] [--json [OUT]]
                                      [--profile]

Every engine runs jobs that sleep ``JOB_SECONDS`` (1 ms): they need no CPU,
so the caller's cores are free however many workers there are, and what the
caller's process burns (``time.process_time()`` around the run, all its
threads) is the pool's own cost. minipool's master thread is read on its own
too (its CPU clock, ``time.pthread_getcpuclockid``). Three ways in:

- ``map, chunksize=1`` and ``map, chunksize=10``: CPU per chunk; from the two,
  the cost of a chunk and of each job in it (a straight line through both);
- ``submit``: every job submitted, then every result awaited; CPU per job.

From the map's line, the projection: for jobs of 1, 10 and 100 ms in chunks
of ``TARGET_CHUNK_SECONDS`` (10 ms, at least one job), the number of workers
whose chunks take the caller one core: a chunk's work over its cost. Past it,
workers wait on the caller. These are the chunks of an input of unknown
length (a generator); a list's first chunks run up to 50 ms
(``LONGEST_CHUNK_SECONDS``), so it needs fewer. ``--profile`` adds a cProfile of minipool's
master thread and of the calling thread during one ``map, chunksize=1`` run.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import engines  # noqa: E402 -- importable once this file's directory is on sys.path
import report  # noqa: E402 -- likewise
from engines import MINIPOOL, MP, PPE  # noqa: E402 -- likewise
from report import HIGHER, LOWER, Metric, Row, Target  # noqa: E402 -- likewise

ENGINES = (MP, PPE, MINIPOOL)
JOB_SECONDS = 0.001
# Jobs per worker in one run: some 0.5 s of sleeping at any worker count.
JOBS_PER_WORKER = 500
CHUNKSIZES = (1, 10)
PROJECTED_JOB_SECONDS = (0.001, 0.01, 0.1)
PROJECTED_COLUMNS = tuple(f"{seconds * 1e3:g} ms jobs" for seconds in PROJECTED_JOB_SECONDS)
# minipool's map sizes chunks to this (see minipool/_scheduling.py); every
# engine's projection uses the same chunks.
TARGET_CHUNK_SECONDS = 0.01
# Issue 19's target: the caller keeps at least this many workers busy with 10 ms jobs.
TARGET_SATURATION_WORKERS = 64
JUDGED_JOB_SECONDS = PROJECTED_JOB_SECONDS[1]  # the projection that target judges: 10 ms jobs
MASTER_THREAD = "minipool-master"
THREADS = ("master thread", "calling thread")


@dataclass
class Sample:
    """One run: jobs, chunks, the caller's CPU seconds, and the master thread's."""

    jobs: int
    chunks: int
    process_cpu: float
    master_cpu: float | None


def thread_cpu(name: str) -> Callable[[], float] | None:
    """A reader of the CPU clock of this process's thread called ``name``, if there is one."""
    thread = next((t for t in threading.enumerate() if t.name == name), None)
    if thread is None or thread.ident is None:
        return None
    clock = time.pthread_getcpuclockid(thread.ident)
    return lambda: time.clock_gettime(clock)


def measure(run: Callable[[], None], jobs: int, chunks: int) -> Sample:
    master = thread_cpu(MASTER_THREAD)
    master_before = master() if master else 0.0
    before = time.process_time()
    run()
    process_cpu = time.process_time() - before
    master_cpu = master() - master_before if master else None
    return Sample(jobs, chunks, process_cpu, master_cpu)


def run_map(engine: str, pool: Any, jobs: int, chunksize: int) -> Callable[[], None]:
    def run() -> None:
        items = [JOB_SECONDS] * jobs
        results = engines.lazy_map(engine, pool, time.sleep, items, chunksize)
        count = sum(1 for _ in results)
        if count != jobs:
            raise AssertionError(f"{engine}: {count} results for {jobs} jobs")

    return run


def run_submit(engine: str, pool: Any, jobs: int) -> Callable[[], None]:
    def run() -> None:
        waits = [engines.submit(engine, pool, time.sleep, JOB_SECONDS) for _ in range(jobs)]
        for wait in waits:
            wait()

    return run


def sample_engine(engine: str, workers: int, start_method: str, jobs: int) -> dict[str, Sample]:
    """Every way in, once, on one fresh pool of ``engine``."""
    with engines.open_pool(engine, workers, start_method) as pool:
        engines.warm_up(engine, pool, workers)
        samples = {}
        for chunksize in CHUNKSIZES:
            run = run_map(engine, pool, jobs, chunksize)
            samples[f"map, chunksize={chunksize}"] = measure(run, jobs, -(-jobs // chunksize))
        samples["submit"] = measure(run_submit(engine, pool, jobs), jobs, jobs)
        return samples


@dataclass
class Cost:
    """A straight line through one engine's two map figures: CPU per chunk and per job."""

    per_chunk: float
    per_job: float

    @classmethod
    def of(cls, one: float, ten: float) -> Cost:
        per_job = max(0.0, (ten - one) / 9)
        return cls(max(0.0, one - per_job), per_job)

    @classmethod
    def of_run(cls, run: dict[str, Sample]) -> Cost:
        one, ten = run["map, chunksize=1"], run["map, chunksize=10"]
        return cls.of(one.process_cpu / one.jobs, ten.process_cpu / (ten.jobs / 10))

    def saturating_workers(self, job_seconds: float) -> float:
        """Workers whose chunks of ``job_seconds`` jobs keep one core of the caller busy."""
        size = max(1, round(TARGET_CHUNK_SECONDS / job_seconds))
        return size * job_seconds / (self.per_chunk + size * self.per_job)


# Each way in: its workload name, what its figure is per, and whether it is judged.
WAY_METRICS = {
    "map, chunksize=1": ("master_map_1", "chunk", True),
    "map, chunksize=10": ("master_map_10", "chunk", True),
    "submit": ("master_submit", "job", False),
}


def metrics_for(workers: int, runs: list[dict[str, dict[str, Sample]]]) -> list[Metric]:
    """One table per way in: the caller process's CPU per chunk (per job for submit), for
    every engine, and minipool's master thread alone; judged against multiprocessing.Pool."""
    metrics = []
    for way, (workload, per, judged) in WAY_METRICS.items():
        rows = []
        for engine in ENGINES:
            samples = [run[engine][way] for run in runs]
            count = [s.chunks if per == "chunk" else s.jobs for s in samples]
            cpu = [s.process_cpu / n * 1e6 for s, n in zip(samples, count, strict=True)]
            rows.append(Row(f"{engine}: {way}", engine, cpu))
            if engine == MINIPOOL:
                own = [
                    s.master_cpu / n * 1e6
                    for s, n in zip(samples, count, strict=True)
                    if s.master_cpu is not None
                ]
                rows.append(Row(f"{engine}: {way}: master thread alone", engine, own))
        mine = f"{MINIPOOL}: {way}"
        metrics.append(
            Metric(
                workload,
                f"{way}, {workers} workers, 1 ms jobs (sleeping): caller CPU per {per}",
                "us",
                LOWER,
                rows,
                (f"{MP}: {way}",),
                [Target(mine, "<=", 1.0, relative=True)] if judged else [],
            )
        )
    metrics.append(projection_metric(workers, runs))
    return metrics


def saturations(
    runs: list[dict[str, dict[str, Sample]]], engine: str, seconds: float
) -> list[float]:
    """Each round's projection for ``engine``: workers of ``seconds`` jobs that take the
    caller a core. The table and the judged metric both take their median."""
    return [Cost.of_run(run[engine]).saturating_workers(seconds) for run in runs]


def projection_metric(workers: int, runs: list[dict[str, dict[str, Sample]]]) -> Metric:
    """Each round's projection for ``JUDGED_JOB_SECONDS`` jobs, per engine; minipool judged
    on its own."""
    jobs = f"{JUDGED_JOB_SECONDS * 1e3:g} ms jobs"
    rows = [
        Row(
            f"{engine}: workers that saturate the caller, {jobs}",
            engine,
            saturations(runs, engine, JUDGED_JOB_SECONDS),
        )
        for engine in ENGINES
    ]
    return Metric(
        "master_projection",
        f"from the two maps at {workers} workers: the worker count at which the caller's "
        f"process would spend one whole core, for {jobs} in "
        f"{TARGET_CHUNK_SECONDS * 1e3:g} ms chunks",
        "workers",
        HIGHER,
        rows,
        (rows[0].label,),
        [Target(rows[ENGINES.index(MINIPOOL)].label, ">=", TARGET_SATURATION_WORKERS, False)],
    )


def projection(all_runs: dict[int, list[dict[str, dict[str, Sample]]]]) -> list[list[str]]:
    """For each engine and worker count: workers that saturate one caller core, per job length."""
    rows = []
    for workers, runs in all_runs.items():
        for engine in ENGINES:
            costs = [Cost.of_run(run[engine]) for run in runs]
            figures = [
                f"{statistics.median(saturations(runs, engine, seconds)):,.0f}"
                for seconds in PROJECTED_JOB_SECONDS
            ]
            per_chunk = statistics.median(c.per_chunk for c in costs)
            per_job = statistics.median(c.per_job for c in costs)
            us = f"{per_chunk * 1e6:.0f} + {per_job * 1e6:.1f}/job"
            rows.append([str(workers), engines.NAMES[engine], us, *figures])
    return rows


def profile_minipool(workers: int, start_method: str, jobs: int) -> str:
    """cProfile of minipool's master thread and of the calling thread during one map."""
    from minipool._backends.processes import master as master_module

    # CPU time, not wall time: the master thread sleeps in select() most of a run.
    profiles = {name: cProfile.Profile(time.thread_time) for name in THREADS}
    original = master_module.Master._run

    def profiled_run(self: Any) -> None:
        profiles["master thread"].runcall(original, self)

    master_module.Master._run = profiled_run  # type: ignore[method-assign]
    try:
        with engines.open_pool(MINIPOOL, workers, start_method) as pool:
            engines.warm_up(MINIPOOL, pool, workers)
            profiles["calling thread"].runcall(run_map(MINIPOOL, pool, jobs, 1))
    finally:
        master_module.Master._run = original  # type: ignore[method-assign]
    out = io.StringIO()
    for name, profile in profiles.items():
        out.write(f"\n---- {name}: {jobs} jobs, map chunksize=1, {workers} workers ----\n")
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--profile", action="store_true", help="profile minipool's master too")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (3)")
    report.add_start_method(parser)
    report.add_json(parser, "master.json")
    report.add_scale(parser)
    args = parser.parse_args()
    facts = report.machine_facts(HERE, args.start_method, args.workers, args.rounds)
    report.print_header(facts)
    json_runs: list[dict[str, Any]] = []
    all_runs: dict[int, list[dict[str, dict[str, Sample]]]] = {}
    for workers in args.workers:
        jobs = max(20, int(JOBS_PER_WORKER * workers * args.scale))
        runs = all_runs[workers] = [
            {e: sample_engine(e, workers, args.start_method, jobs) for e in order}
            for order in (engines.round_order(i, ENGINES) for i in range(args.rounds))
        ]
        metrics = metrics_for(workers, runs)
        for metric in metrics:
            report.print_metric(metric)
        json_runs.append({"workers": workers, "metrics": [m.to_json() for m in metrics]})
    header = ["workers", "engine", "caller CPU (us)", *PROJECTED_COLUMNS]
    projected = projection(all_runs)
    report.print_table(
        "Projected workers at which the caller saturates one core (chunks of 10 ms of work)",
        header,
        projected,
    )
    if args.json:
        table = [dict(zip(header, row, strict=True)) for row in projected]
        report.write_json(args.json, {"machine": facts, "runs": json_runs, "projection": table})
    if args.profile:
        print(
            profile_minipool(args.workers[0], args.start_method, max(200, int(4000 * args.scale)))
        )
    errors = any(row["errors"] for run in json_runs for m in run["metrics"] for row in m["rows"])
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
