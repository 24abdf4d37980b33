"""Large data: numpy arrays in and out of jobs, minipool beside its peers in one run.

    results    48 jobs each returning a new 16 MiB float64 array: MB/s received
    arguments  a map over 48 distinct 16 MiB arrays, each job summing its own: MB/s sent

Every engine runs with its defaults for large data: minipool moves the arrays'
buffers through shared memory segments; joblib memmaps large arguments
(``max_nbytes``, 1 MB); the others pickle them through their pipes and
queues. References in the same run: the jobs' own work done in the caller
(no pool), the raw pipe (``Connection.send_bytes`` of the same bytes from
one child process), and a memory copy of them.

    .venv/bin/python benchmarks/bench_large.py                 # 2 workers, fork, 3 rounds
    .venv/bin/python benchmarks/bench_large.py --start-method spawn --scale 0.25

One large array read by many jobs (``Pool.share``) is ``bench_shared.py``.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import multiprocessing
import os
import sys
from collections.abc import Callable
from time import perf_counter
from typing import Any

import engines
import numpy as np
import report
import tasks
from bench_engine import Case, Config, check, peer_notes, run_rounds
from engines import MINIPOOL
from report import HIGHER, Metric, Row, Target

import minipool
from minipool._segments import OUT_OF_BAND_MIN_BYTES

HERE = os.path.dirname(os.path.abspath(__file__))
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux; the name is in Python 3.10+
JOBS = 48
ARRAY_BYTES = 16 << 20
fresh_array, total = tasks.fresh_array, tasks.array_sum


# ---- results ----------------------------------------------------------------------


def results_case(engine: str, jobs: int, size: int) -> Case:
    make = functools.partial(fresh_array, size=size)

    def run(pool: Any) -> float:
        start = perf_counter()
        firsts = [
            float(array[0])
            # Results one by one, each dropped once read: what a consumer of a stream does.
            for array in engines.lazy_map(engine, pool, make, range(jobs), 1)
        ]
        seconds = perf_counter() - start
        check(firsts == [float(n) for n in range(jobs)], "wrong results")
        return jobs * size / seconds / 1e6

    return Case(Row(f"{engine}: map, 1 job per chunk", engine), run)


def results(config: Config) -> list[Metric]:
    jobs, size = config.count(JOBS), ARRAY_BYTES
    cases = [results_case(engine, jobs, size) for engine in engines.everyone()]
    references = [
        reference_case("in-process: the jobs in the caller", lambda: in_process(jobs, size)),
        reference_case("raw pipe: os.write, os.readv to one buffer", lambda: raw_pipe(jobs, size)),
        reference_case("memory copy of each array", lambda: memory_copy(jobs, size)),
    ]
    run_rounds(config, cases)
    run_references(config, references)
    mine = next(case.row for case in cases if case.row.engine == MINIPOOL)
    pipe = references[1].row
    over_pipe = report.ratio(mine, pipe)
    return [
        Metric(
            "large_results",
            f"{jobs} jobs each returning a new {size >> 20} MiB float64 array",
            "MB/s",
            HIGHER,
            [case.row for case in cases] + [case.row for case in references],
            tuple(case.row.label for case in cases if engines.is_peer(case.row.engine)),
            [Target(mine.label, ">=", 3.0, relative=True)],
            peer_notes(
                "reference: the best peer; targets: 3x it, and 2x the raw pipe "
                f"(minipool / raw pipe here: {report.format_ratio(over_pipe)})"
            ),
        )
    ]


# ---- arguments --------------------------------------------------------------------


def arguments_case(engine: str, arrays: list[Any]) -> Case:
    expected = [float(array.sum()) for array in arrays]

    def run(pool: Any) -> float:
        start = perf_counter()
        sums = list(engines.lazy_map(engine, pool, total, arrays, 1))
        seconds = perf_counter() - start
        check(sums == expected, "wrong sums")
        return sum(array.nbytes for array in arrays) / seconds / 1e6

    return Case(Row(f"{engine}: map, 1 job per chunk", engine), run)


def arguments(config: Config) -> list[Metric]:
    jobs = config.count(JOBS)
    arrays = [fresh_array(n, ARRAY_BYTES) for n in range(jobs)]
    cases = [arguments_case(engine, arrays) for engine in engines.everyone()]
    references = [
        reference_case("in-process: the jobs in the caller", lambda: summed(arrays)),
    ]
    run_rounds(config, cases)
    run_references(config, references)
    mine = f"{MINIPOOL}: map, 1 job per chunk"
    return [
        Metric(
            "large_arguments",
            f"a map over {jobs} distinct {ARRAY_BYTES >> 20} MiB float64 arrays",
            "MB/s",
            HIGHER,
            [case.row for case in cases] + [case.row for case in references],
            tuple(case.row.label for case in cases if engines.is_peer(case.row.engine)),
            [Target(mine, ">=", 2.0, relative=True)],
            peer_notes("reference: the best peer (joblib memmaps large arguments)"),
        )
    ]


# ---- the threshold ----------------------------------------------------------------

CROSSOVER_SIZES = (64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 4 << 20)
CROSSOVER_BYTES = 256 << 20  # moved per sample, whatever the size of each result


def crossover_sample(config: Config, size: int, shared: bool) -> float:
    """MB/s of results of ``size`` bytes, with shared memory for them or not."""
    jobs = max(2, config.count(CROSSOVER_BYTES // size))
    threshold = size if shared else 1 << 62
    make = functools.partial(fresh_array, size=size)
    with minipool.Pool(
        config.workers,
        start_method=config.start_method,
        init=tasks.set_out_of_band_min_bytes,
        init_args=(threshold,),
    ) as pool:
        engines.warm_up(MINIPOOL, pool, config.workers)
        start = perf_counter()
        for _ in pool.map(make, range(jobs), chunksize=1):
            pass
        return jobs * size / (perf_counter() - start) / 1e6


def crossover(config: Config) -> list[Metric]:
    """Where shared memory starts to beat the pipe: the choice of OUT_OF_BAND_MIN_BYTES."""
    rows = []
    for size in CROSSOVER_SIZES:
        through = {
            shared: Row(f"{size >> 10:,} KiB, {way}", MINIPOOL)
            for shared, way in ((True, "shared memory"), (False, "pipe"))
        }
        for _ in range(config.rounds):
            for shared in (True, False):
                through[shared].samples.append(crossover_sample(config, size, shared))
        rows += [through[True], through[False]]
    return [
        Metric(
            "crossover",
            "minipool's results of one size, through shared memory or the pipe",
            "MB/s",
            HIGHER,
            rows,
            (),
            [],
            [
                f"minipool sends buffers of {OUT_OF_BAND_MIN_BYTES >> 10} KiB and up through "
                "shared memory (_segments.OUT_OF_BAND_MIN_BYTES)"
            ],
        )
    ]


# ---- references -------------------------------------------------------------------


def reference_case(label: str, measure: Callable[[], float]) -> Case:
    """A row measured without a pool: ``measure()`` returns its MB/s."""
    return Case(Row(label, "reference"), lambda _: measure())


def run_references(config: Config, cases: list[Case]) -> None:
    for _ in range(config.rounds):
        for case in cases:
            case.row.samples.append(case.run(None))


def in_process(jobs: int, size: int) -> float:
    start = perf_counter()
    for n in range(jobs):
        fresh_array(n, size)
    return jobs * size / (perf_counter() - start) / 1e6


def summed(arrays: list[np.ndarray]) -> float:
    start = perf_counter()
    for array in arrays:
        total(array)
    return sum(array.nbytes for array in arrays) / (perf_counter() - start) / 1e6


def _send(fd: int, jobs: int, size: int) -> None:
    data = memoryview(fresh_array(0, size)).cast("B")
    for _ in range(jobs):
        view = data
        while view:
            view = view[os.write(fd, view) :]
    os.close(fd)


def raw_pipe(jobs: int, size: int) -> float:
    """What a pipe carries at best: a child writes an array's bytes ``jobs`` times, the
    caller reads them into one buffer it reuses (1 MiB of pipe, as minipool's; no job's
    work, no pickling, no fresh pages: the pipe alone)."""
    reader, writer = os.pipe()
    fcntl.fcntl(writer, F_SETPIPE_SZ, 1 << 20)
    child = multiprocessing.get_context("fork").Process(target=_send, args=(writer, jobs, size))
    into = memoryview(bytearray(size))
    start = perf_counter()
    child.start()
    os.close(writer)
    for _ in range(jobs):
        got = 0
        while got < size:
            got += os.readv(reader, [into[got:]])
    seconds = perf_counter() - start
    child.join()
    os.close(reader)
    return jobs * size / seconds / 1e6


def memory_copy(jobs: int, size: int) -> float:
    source = fresh_array(0, size)
    start = perf_counter()
    for _ in range(jobs):
        source.copy()
    return jobs * size / (perf_counter() - start) / 1e6


WORKLOADS: dict[str, Callable[[Config], list[Metric]]] = {
    "results": results,
    "arguments": arguments,
    "crossover": crossover,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    report.add_run_options(parser, rounds=3, json_name="large.json")
    report.add_scale(parser)
    parser.add_argument("--only", nargs="+", choices=list(WORKLOADS), metavar="NAME")
    args = parser.parse_args(argv)
    facts = report.machine_facts(HERE, args.start_method, [args.workers], args.rounds)
    report.print_header(facts)
    config = Config(args.workers, args.start_method, args.rounds, args.scale)
    metrics = [
        metric for name in args.only or list(WORKLOADS) for metric in WORKLOADS[name](config)
    ]
    return report.finish(args.json, facts, metrics)


if __name__ == "__main__":
    sys.exit(main())
