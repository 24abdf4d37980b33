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
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import sys
import threading
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

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
        reference_case("raw pipe: send_bytes from a child", lambda: raw_pipe(jobs, size)),
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


# ---- one array shared by many jobs --------------------------------------------------

SHARED_BYTES = 512 << 20
SHARED_JOBS = 200
# Peers that start their workers with fork, and so inherit a global array copy-on-write.
INHERITING = (engines.MP, engines.PPE, engines.PEBBLE, engines.MPIRE)


def pss_bytes(pids: set[int]) -> int:
    """The total proportional set size of ``pids`` (shared pages counted once overall)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:  # it exited meanwhile
            continue
    return total


class PeakMemory:
    """Samples the PSS of this process and its children every 10 ms, in a thread."""

    def __init__(self) -> None:
        self.before = self.peak = pss_bytes(self._pids())
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _pids(self) -> set[int]:
        return {os.getpid(), *descendants(os.getpid())}

    def _sample(self) -> None:
        while not self._done.wait(0.01):
            self.peak = max(self.peak, pss_bytes(self._pids()))

    def growth(self) -> int:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, pss_bytes(self._pids()))
        return self.peak - self.before


def descendants(root: int) -> set[int]:
    """Every process below ``root`` (a forkserver's workers too), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry))
    found, stack = set(), [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def shared_items(array: Any, jobs: int, source: Any) -> list[tuple[Any, int, int]]:
    step = -(-len(array) // jobs)
    return [(source, start, min(start + step, len(array))) for start in range(0, len(array), step)]


def shared_case(engine: str, array: Any, jobs: int, seconds: Row, growth: Row) -> tuple[Case, Row]:
    expected = float(array.sum())

    def run(pool: Any) -> float:
        memory = PeakMemory()
        start = perf_counter()
        shared = pool.share(array) if engine == MINIPOOL else None
        shared_at = perf_counter()
        items = shared_items(array, jobs, shared)
        total_ = sum(engines.lazy_map(engine, pool, tasks.slice_sum, items, 1))
        end = perf_counter()
        growth.samples.append(memory.growth() / 1e6)
        check(abs(total_ - expected) <= 1e-6 * abs(expected), "wrong sum")
        if shared is not None:
            shared.release()
            share_row.samples.append(shared_at - start)
        return end - shared_at

    share_row = Row(f"{engine}: share() before the map", engine)
    return Case(seconds, run), share_row


def shared(config: Config) -> list[Metric]:
    jobs = config.count(SHARED_JOBS)
    array = np.arange(max(jobs, int(SHARED_BYTES * config.scale)) // 8, dtype=np.float64)
    tasks.INHERITED = array  # before any pool starts: fork-started workers inherit it
    cases, growths, shares = [], [], []
    for engine in engines.everyone():
        if engine != MINIPOOL and engine not in INHERITING:
            continue
        seconds = Row(f"{engine}: map, 1 job per chunk", engine)
        growth = Row(f"{engine}: peak PSS growth", engine)
        case, share_row = shared_case(engine, array, jobs, seconds, growth)
        cases.append(case)
        growths.append(growth)
        if engine == MINIPOOL:
            shares.append(share_row)
    compute = reference_case(
        "in-process: the jobs in the caller",
        lambda: timed(lambda: [tasks.slice_sum(i) for i in shared_items(array, jobs, array)]),
    )
    run_rounds(config, cases)
    run_references(config, [compute])
    tasks.INHERITED = None
    size = array.nbytes
    mine = f"{MINIPOOL}: map, 1 job per chunk"
    notes = peer_notes(
        "minipool reads a Pool.share() of the array; the peers (fork only: loky and joblib "
        "cannot) inherit it as a global, copy-on-write"
    )
    return [
        Metric(
            "shared_seconds",
            f"one {size >> 20} MiB array read by {jobs} jobs, each summing its own slice",
            "s",
            report.LOWER,
            [case.row for case in cases] + shares + [compute.row],
            tuple(case.row.label for case in cases if engines.is_peer(case.row.engine)),
            [Target(mine, "<=", 1.0, relative=True)],
            notes,
        ),
        Metric(
            "shared_memory",
            f"peak PSS growth, caller and workers, while {jobs} jobs read one "
            f"{size >> 20} MiB array (share() included)",
            "MB",
            report.LOWER,
            growths,
            tuple(row.label for row in growths if engines.is_peer(row.engine)),
            [Target(f"{MINIPOOL}: peak PSS growth", "<=", 1.3 * size / 1e6, relative=False)],
            [f"target: at most 1.3x the array's {size / 1e6:,.0f} MB"],
        ),
    ]


def timed(work: Callable[[], Any]) -> float:
    start = perf_counter()
    work()
    return perf_counter() - start


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


def _send(connection: Any, jobs: int, size: int) -> None:
    data = memoryview(fresh_array(0, size)).cast("B")
    for _ in range(jobs):
        connection.send_bytes(data)
    connection.close()


def raw_pipe(jobs: int, size: int) -> float:
    """What one pipe carries: a child sends an array's bytes ``jobs`` times, the caller
    receives them (no job's work, no pickling: the pipe alone)."""
    ctx = multiprocessing.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_send, args=(writer, jobs, size))
    start = perf_counter()
    child.start()
    writer.close()
    for _ in range(jobs):
        reader.recv_bytes()
    seconds = perf_counter() - start
    child.join()
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
    "shared": shared,
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
