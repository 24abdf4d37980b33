"""One large read-only array read by many jobs: minipool's ``Pool.share`` beside each
peer's own way of giving every worker the same array.

    shared_seconds  200 jobs each summing its own slice of one 512 MiB array, the pool up
                    and the array already where its jobs read it
    shared_setup    from nothing to that point: the pool started and the array handed
                    to it (minipool: Pool() then share(); the others: the pool started
                    with the array in its initializer's arguments)
    shared_memory   the growth of the total PSS of the caller and its workers
                    (/proc/PID/smaps_rollup) from before the pool to the end of the map

How each engine gets the array to its workers: minipool, one ``Pool.share``
(a shared segment every worker maps); multiprocessing, ProcessPoolExecutor,
pebble and loky, their ``initializer`` and ``initargs`` (under fork, the
workers inherit the array copy-on-write; under spawn and forkserver it is
pickled into each worker; loky always starts its workers its own spawn-like
way); mpire, its ``shared_objects`` (the same, by start method); joblib, the
array as an argument of every call, which joblib memmaps once. The reference:
the same sums in the caller, no pool.

    .venv/bin/python benchmarks/bench_shared.py                    # fork, 2 workers, 3 rounds
    .venv/bin/python benchmarks/bench_shared.py --start-method spawn
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from time import perf_counter
from typing import Any

import engines
import numpy as np
import report
import tasks
from bench_engine import Config, check, peer_notes
from engines import JOBLIB, LOKY, MINIPOOL, MP, MPIRE, PEBBLE, PPE
from report import LOWER, Metric, Row, Target

import minipool

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_BYTES = 512 << 20
SHARED_JOBS = 200


@contextmanager
def sharing_pool(
    engine: str, workers: int, start_method: str, array: Any
) -> Iterator[tuple[Any, Any, Any]]:
    """A started pool of ``engine`` whose jobs can read ``array`` the way that engine's
    users give one to every worker; with the job to map and what to put in each item
    in place of the array (None: the worker has it as ``tasks.INHERITED``)."""
    ctx = multiprocessing.get_context(start_method)
    init = {"initializer": tasks.set_inherited, "initargs": (array,)}
    if engine == MINIPOOL:
        with minipool.Pool(workers, start_method=start_method) as pool:
            shared = pool.share(array)
            yield pool, tasks.slice_sum, shared
            shared.release()
    elif engine == MP:
        pool = ctx.Pool(workers, **init)
        yield pool, tasks.slice_sum, None
        pool.close()
        pool.join()
    elif engine == PPE:
        with ProcessPoolExecutor(workers, mp_context=ctx, **init) as executor:
            yield executor, tasks.slice_sum, None
    else:
        with _peer(engine, workers, ctx, init, array) as opened:
            yield opened


@contextmanager
def _peer(
    engine: str, workers: int, ctx: Any, init: dict[str, Any], array: Any
) -> Iterator[tuple[Any, Any, Any]]:
    if engine == LOKY:
        import loky

        with loky.ProcessPoolExecutor(workers, **init) as executor:
            yield executor, tasks.slice_sum, None
    elif engine == PEBBLE:
        import pebble

        pool = pebble.ProcessPool(workers, context=ctx, **init)
        yield pool, tasks.slice_sum, None
        pool.close()
        pool.join()
    elif engine == MPIRE:
        import mpire

        start_method = ctx.get_start_method()
        with mpire.WorkerPool(workers, start_method=start_method, shared_objects=array) as pool:
            yield pool, tasks.slice_sum_of_shared_objects, None
            pool.stop_and_join()
    elif engine == JOBLIB:
        import joblib

        with joblib.Parallel(n_jobs=workers, return_as="generator") as parallel:
            yield parallel, tasks.slice_sum, array
    else:
        raise ValueError(f"no way to share an array with {engine!r}")


def pss_bytes() -> int:
    """The total proportional set size of this process and every process below it."""
    total = 0
    for pid in {os.getpid(), *descendants(os.getpid())}:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                total += next(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
        except (OSError, StopIteration):  # it exited meanwhile
            continue
    return total * 1024


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


def warm_up(engine: str, pool: Any, workers: int) -> None:
    """``engines.warm_up``; with mpire's own job, which gets its ``shared_objects`` first."""
    if engine != MPIRE:
        engines.warm_up(engine, pool, workers)
        return
    count = 4 * workers
    done = list(pool.imap(tasks.inc_beside_shared_objects, range(count), chunk_size=1))
    check(done == list(range(1, count + 1)), "the warm-up jobs returned wrong results")


def slices(length: int, jobs: int, source: Any) -> list[tuple[Any, int, int]]:
    step = -(-length // jobs)
    return [(source, start, min(start + step, length)) for start in range(0, length, step)]


def sample(engine: str, config: Config, array: Any, jobs: int) -> tuple[float, float, float]:
    """One run: seconds of the map, seconds of the setup, bytes of PSS growth.

    PSS is read before and after, not sampled during the map: reading
    smaps_rollup walks every page table of a process (a 512 MiB mapping of
    small pages is 131,072 entries), which would slow the very jobs measured.
    """
    before = pss_bytes()
    started = perf_counter()
    with sharing_pool(engine, config.workers, config.start_method, array) as (pool, fn, source):
        warm_up(engine, pool, config.workers)
        ready = perf_counter()
        total = sum(engines.lazy_map(engine, pool, fn, slices(len(array), jobs, source), 1))
        done = perf_counter()
        growth = pss_bytes() - before
    check(abs(total - float(array.sum())) <= 1e-9 * abs(total), "wrong sum")
    return done - ready, ready - started, growth


def shared(config: Config) -> list[Metric]:
    jobs = config.count(SHARED_JOBS)
    array = np.arange(max(jobs, int(SHARED_BYTES * config.scale)) // 8, dtype=np.float64)
    names = [name for name in engines.everyone() if name == MINIPOOL or engines.is_peer(name)]
    rows = {
        name: (Row(f"{name}: map", name), Row(f"{name}: setup", name), Row(f"{name}: PSS", name))
        for name in names
    }
    for round_index in range(config.rounds):
        for name in engines.round_order(round_index, tuple(names)):
            try:
                figures = sample(name, config, array, jobs)
            except Exception as error:
                for row in rows[name]:
                    row.errors.append(f"{type(error).__name__}: {error}")
                continue
            for row, figure in zip(rows[name], (*figures[:2], figures[2] / 1e6), strict=True):
                row.samples.append(figure)
    compute = Row("in-process: the jobs in the caller", "reference")
    for _ in range(config.rounds):
        started = perf_counter()
        sum(tasks.slice_sum(item) for item in slices(len(array), jobs, array))
        compute.samples.append(perf_counter() - started)
    return metrics(rows, compute, array.nbytes, jobs)


def metrics(
    rows: dict[str, tuple[Row, Row, Row]], compute: Row, size: int, jobs: int
) -> list[Metric]:
    """The three tables, one per figure of ``rows`` (map, setup, PSS)."""
    peers = [name for name in rows if engines.is_peer(name)]
    mine = rows[MINIPOOL]
    notes = peer_notes("reference: the best peer; see the script's docstring for each one's way")
    tables = [
        (
            "shared_seconds",
            "the map",
            "s",
            [compute],
            [Target(mine[0].label, "<=", 1.0, relative=True)],
            [*notes, "targets: no slower than the best peer, and 1.25x the in-process compute"],
        ),
        ("shared_setup", "the pool started and the array handed to it", "s", [], [], notes),
        (
            "shared_memory",
            "growth of the total PSS, caller and workers",
            "MB",
            [],
            [Target(mine[2].label, "<=", 1.3 * size / 1e6, relative=False)],
            [f"target: at most 1.3x the array's {size / 1e6:,.0f} MB"],
        ),
    ]
    what = f"one {size >> 20} MiB array read by {jobs} jobs, each summing its own slice"
    return [
        Metric(
            workload,
            f"{what}: {title}",
            unit,
            LOWER,
            [rows[name][figure] for name in rows] + extra,
            tuple(rows[name][figure].label for name in peers),
            targets,
            table_notes,
        )
        for figure, (workload, title, unit, extra, targets, table_notes) in enumerate(tables)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    report.add_run_options(parser, rounds=3, json_name="shared.json")
    report.add_scale(parser)
    args = parser.parse_args(argv)
    facts = report.machine_facts(HERE, args.start_method, [args.workers], args.rounds)
    report.print_header(facts)
    config = Config(args.workers, args.start_method, args.rounds, args.scale)
    return report.finish(args.json, facts, shared(config))


if __name__ == "__main__":
    sys.exit(main())
