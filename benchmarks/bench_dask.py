"""minipool's Dask backend against Dask itself, on the same cluster, in one run.

    python benchmarks/bench_dask.py [--workers 2] [--rounds 3] [--scale F] [--json [OUT.json]]

One ``LocalCluster`` started as ``Pool(cluster="local")`` starts its own
(``start_local_cluster``: ``--workers`` processes of one thread each, on
127.0.0.1, with ``LOCAL_CLUSTER_CONFIG``) and one ``distributed.Client`` on it; the raw Dask
rows use that client, and ``minipool.Pool(cluster=client)`` runs on it too,
so both engines have the same scheduler and the same workers. What is
measured is what minipool adds on top of Dask:

- ``tiny_submit``: jobs of ``tasks.inc`` submitted one by one, then every
  result awaited; microseconds per job. Dask: ``client.submit(inc, i,
  pure=False)`` each, then ``client.gather``; minipool: ``pool.submit(inc, i)``
  each, then every ``Future.result()``.
- ``cpu_bound``: ``tasks.spin`` jobs of ~10 ms (calibrated here) over a list;
  wall time. Dask: ``client.map(spin, items, pure=False)``, then
  ``client.gather``; minipool: ``list(pool.map(spin, items))``.

The reference is the Dask row; the target is minipool at most 1.2x it. Each
engine is warmed once, with ``4 * workers`` jobs, before the first round; the
engines alternate within each round, in an order shuffled anew each round
(seeded), and tables give the median over the rounds. The task functions live
in ``tasks.py``, which Dask's workers import by reference as minipool's do
(spawned workers inherit this script's ``sys.path``). Exit status 1 when a
sample failed (an engine error, a wrong result); targets do not change it.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib.metadata
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from time import perf_counter
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import dask  # noqa: E402 -- with the rest, after the path set-up
import distributed  # noqa: E402 -- likewise
import report  # noqa: E402 -- importable once this file's directory is on sys.path
import tasks  # noqa: E402 -- likewise
from bench_engine import calibrated_iterations  # noqa: E402 -- likewise
from engines import round_order  # noqa: E402 -- likewise
from report import LOWER, Metric, Row, Target  # noqa: E402 -- likewise

import minipool  # noqa: E402 -- likewise
from minipool._backends.dask import (  # noqa: E402 -- likewise
    LOCAL_CLUSTER_CONFIG,
    start_local_cluster,
)

DASK = "dask"
MINIPOOL = "minipool"
TINY_SUBMIT_JOBS = 2_000  # Dask alone manages ~3 ms per job here: ~6 s a sample
CPU_JOBS = 300
CPU_JOB_SECONDS = 0.010
TARGET_RATIO = 1.2
WARM_UP_JOBS_PER_WORKER = 4
# A hang is a finding, not a reason to sit forever: dump every thread's stack and exit.
WATCHDOG_SECONDS = 300


@dataclass(frozen=True)
class Engines:
    """The one client, and the minipool pool on it."""

    client: distributed.Client
    pool: minipool.Pool
    workers: int


@dataclass(frozen=True)
class Case:
    row: Row
    run: Callable[[Engines], float]  # one sample


# ---- the cluster and the rounds -------------------------------------------------------


@contextmanager
def local_cluster(workers: int) -> Iterator[distributed.Client]:
    """A client on a LocalCluster set up as ``Pool(cluster="local")`` sets up its own."""
    cluster = start_local_cluster(workers)
    try:
        with distributed.Client(cluster, set_as_default=False) as client:
            yield client
    finally:
        cluster.close()


def warm_up(engines: Engines) -> None:
    """Every worker has run a job of each engine, and each engine has its function cached."""
    items = list(range(WARM_UP_JOBS_PER_WORKER * engines.workers))
    expected = [tasks.inc(item) for item in items]
    check(engines.client.gather(engines.client.map(tasks.inc, items, pure=False)) == expected)
    check(list(engines.pool.map(tasks.inc, items)) == expected)


def run_rounds(engines: Engines, rounds: int, cases: list[Case]) -> None:
    """Each round, every case in turn, in an order shuffled anew each round (seeded)."""
    for round_index in range(rounds):
        for case in round_order(round_index, tuple(cases)):
            faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
            try:
                case.row.samples.append(case.run(engines))
            except Exception as error:
                case.row.errors.append(f"{type(error).__name__}: {error}")
            finally:
                faulthandler.cancel_dump_traceback_later()


def check(condition: bool, what: str = "wrong results") -> None:
    if not condition:
        raise AssertionError(what)


def common_notes(workers: int) -> list[str]:
    return [
        f"both engines on one LocalCluster ({workers} worker processes x 1 thread) and one "
        "Client; each warmed once before the first round",
    ]


# ---- tiny_submit ------------------------------------------------------------------------


def dask_submits(jobs: int) -> Case:
    def run(engines: Engines) -> float:
        client = engines.client
        start = perf_counter()
        futures = [client.submit(tasks.inc, i, pure=False) for i in range(jobs)]
        results = client.gather(futures)
        seconds = perf_counter() - start
        check(results == list(range(1, jobs + 1)))
        return seconds / jobs * 1e6

    return Case(Row(f"{DASK}: client.submit(pure=False) + client.gather", DASK), run)


def minipool_submits(jobs: int) -> Case:
    def run(engines: Engines) -> float:
        pool = engines.pool
        start = perf_counter()
        futures = [pool.submit(tasks.inc, i) for i in range(jobs)]
        results = [future.result() for future in futures]
        seconds = perf_counter() - start
        check(results == list(range(1, jobs + 1)))
        return seconds / jobs * 1e6

    return Case(Row(f"{MINIPOOL}: Pool(cluster=client).submit + result", MINIPOOL), run)


def tiny_submit(engines: Engines, rounds: int, scale: float) -> Metric:
    jobs = count(TINY_SUBMIT_JOBS, scale)
    raw, mine = dask_submits(jobs), minipool_submits(jobs)
    run_rounds(engines, rounds, [raw, mine])
    return Metric(
        "tiny_submit",
        f"{jobs:,} single jobs of inc submitted, then every result awaited; wall time per job",
        "us/job",
        LOWER,
        [raw.row, mine.row],
        (raw.row.label,),
        [Target(mine.row.label, "<=", TARGET_RATIO, relative=True)],
        common_notes(engines.workers),
    )


# ---- cpu_bound --------------------------------------------------------------------------


def timed_spins(label: str, engine: str, items: list[int], expected: list[int]) -> Case:
    def run(engines: Engines) -> float:
        start = perf_counter()
        if engine == DASK:
            futures = engines.client.map(tasks.spin, items, pure=False)
            results = engines.client.gather(futures)
        else:
            results = list(engines.pool.map(tasks.spin, items))
        seconds = perf_counter() - start
        check(results == expected)
        return seconds

    return Case(Row(label, engine), run)


def cpu_bound(engines: Engines, rounds: int, scale: float) -> Metric:
    iterations = calibrated_iterations(CPU_JOB_SECONDS)
    jobs = count(CPU_JOBS, scale)
    items, expected = [iterations] * jobs, [tasks.spin(iterations)] * jobs
    job_seconds = min(spin_seconds(iterations) for _ in range(3))
    raw = timed_spins(f"{DASK}: client.map(pure=False) + client.gather", DASK, items, expected)
    mine = timed_spins(f"{MINIPOOL}: list(Pool(cluster=client).map)", MINIPOOL, items, expected)
    run_rounds(engines, rounds, [raw, mine])
    ideal = jobs * job_seconds / engines.workers
    return Metric(
        "cpu_bound",
        f"{jobs} pure-Python jobs of ~{job_seconds * 1e3:.1f} ms (spin), mapped over a list; "
        "wall time",
        "s",
        LOWER,
        [raw.row, mine.row],
        (raw.row.label,),
        [Target(mine.row.label, "<=", TARGET_RATIO, relative=True)],
        [
            *common_notes(engines.workers),
            f"ideal (the jobs' serial time here / workers): {ideal * 1e3:.1f} ms",
            "minipool's map runs with chunksize=None: chunks sized from measured job times",
        ],
    )


def spin_seconds(iterations: int) -> float:
    start = perf_counter()
    tasks.spin(iterations)
    return perf_counter() - start


def count(full: int, scale: float) -> int:
    """``full`` jobs at this run's ``--scale``."""
    return max(1, round(full * scale))


# ---- the run ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes (2)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per workload (3)")
    report.add_scale(parser)
    report.add_json(parser, "dask.json")
    args = parser.parse_args(argv)
    if min(args.workers, args.rounds) < 1:
        parser.error("--workers and --rounds must be at least 1")
    return args


def print_header(facts: dict[str, Any]) -> None:
    load = " ".join(f"{x:.2f}" for x in facts["load_average"] or [])
    print(f"minipool on Dask against Dask itself, {facts['date']}")
    print(f"  {facts['python']} on {facts['platform']}")
    print(f"  cpus: {facts['cpu_count']} ({facts['cpus_usable']} usable); load average {load}")
    print(f"  minipool {facts['minipool']}; distributed {facts['distributed']}")
    print(
        f"  one LocalCluster: {facts['workers'][0]} worker processes x 1 thread "
        f"(started with {facts['start_method']}), {facts['cluster_config']}"
    )
    print(f"  rounds {facts['rounds']}, engine order shuffled each round; scale {facts['scale']}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    method = dask.config.get("distributed.worker.multiprocessing-method")
    facts = report.machine_facts(HERE, method, [args.workers], args.rounds)
    facts |= {
        "scale": args.scale,
        "distributed": importlib.metadata.version("distributed"),
        "cluster_config": LOCAL_CLUSTER_CONFIG,
    }
    print_header(facts)
    started = perf_counter()
    with local_cluster(args.workers) as client, minipool.Pool(cluster=client) as pool:
        print(f"  (cluster and pool up in {perf_counter() - started:.1f} s)")
        engines = Engines(client, pool, args.workers)
        warm_up(engines)
        metrics = []
        for workload in (tiny_submit, cpu_bound):
            metrics.append(workload(engines, args.rounds, args.scale))
            report.print_metric(metrics[-1])
    report.print_summary(report.summary_rows(args.workers, metrics))
    if args.json:
        report.write_json(args.json, {"machine": facts, "metrics": [m.to_json() for m in metrics]})
    return 1 if any(row.errors for metric in metrics for row in metric.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
