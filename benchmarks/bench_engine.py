"""minipool against every peer installed, workload by workload, in one run.

    python benchmarks/bench_engine.py [--workers N ...] [--start-method fork] [--rounds R]
                                      [--scale F] [--json [OUT.json]] [--only NAME ...]
                                      [--baseline REV]

The peers are multiprocessing.Pool, ProcessPoolExecutor and, from the
``bench`` extra, loky, pebble, mpire and joblib (``engines.py``). Every
engine runs in this process (``lazy_memory``: in fresh child processes of it)
with the same worker count and, where it allows one, the same start method.
Each sample gets a fresh pool; the samples take turns within each round, in an
order shuffled anew each round (the same way in every run), so that a noisy neighbour slows all of
them alike. Each table gives the median, min and max over the rounds and the
median's ratio to the row its target names. See benchmarks/README.md for what
each workload measures; ``run_all.py`` runs this with the other benchmarks.

``--baseline REV`` adds minipool's package as it was at git revision REV
(``engines.add_baseline``): a row ``minipool@<rev>`` beside each minipool row
in every workload but ``lazy_memory``, with the ratio of the two.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import json
import multiprocessing
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from time import perf_counter
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import engines  # noqa: E402 -- importable once this file's directory is on sys.path
import report  # noqa: E402 -- likewise
import tasks  # noqa: E402 -- likewise
from engines import JOBLIB, MINIPOOL, MP, MPIRE, PEBBLE, PPE  # noqa: E402 -- likewise
from report import HIGHER, LOWER, Metric, Row, Target  # noqa: E402 -- likewise

TINY_MAP_ITEMS = 200_000
# A map that sends one job per message manages some 10,000 jobs/s here: the
# full list would cost ~20 s per round, so it gets a fortieth.
TINY_MAP_SLOW_ITEMS = 5_000
# multiprocessing.Pool.map is given each of these and its own default; the
# best median is the reference.
MP_CHUNKSIZES = (1_000, 5_000, 10_000)
TUNED_CHUNKSIZE = 10_000
TINY_SUBMIT_JOBS = 20_000
# Issue 19's target for submit + result, as a ratio to apply_async (v1's was 1.0).
SUBMIT_TARGET = 0.7
SUBMIT_CALLS = {MP: "apply_async + get", MPIRE: "apply_async + get", PEBBLE: "schedule + result"}
SHUTDOWNS = {MP: "close() + join()", PEBBLE: "close() + join()", MPIRE: "stop_and_join()"}
STARTUP_REPEATS = 10
LAZY_ITEMS = 2_000_000
LAZY_CHUNKSIZE = 1_000
# ProcessPoolExecutor.map with chunksize=1 submits every input up front, a
# future each (~2 kB): 200,000 items take ~430 MB and ~18 s, so it runs
# once, on a tenth of the input.
LAZY_PPE_DEFAULT_ITEMS = 200_000
CPU_JOBS = 400
CPU_JOB_SECONDS = 0.005
SKEWED_LONG_JOBS = 20
SKEWED_SHORT_JOBS = 380
SKEWED_SECONDS = (0.040, 0.001)
MIXED_JOBS = 2_000
# Every 50th job, the first of each 50, is long: 2% of the jobs, some 80% of the work.
MIXED_LONG_EVERY = 50
MIXED_SECONDS = (0.200, 0.001)
PAYLOAD_JOBS = 100
PAYLOAD_SIZES = (64 << 10, 1 << 20, 4 << 20, 16 << 20)
JUDGED_PAYLOAD = 4 << 20
# A hang is a finding, not a reason to sit forever: dump every thread's stack and exit.
WATCHDOG_SECONDS = 300
CHILD_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class Config:
    workers: int
    start_method: str
    rounds: int
    scale: float = 1.0

    def count(self, full: int) -> int:
        """``full`` jobs or items, at this run's ``--scale``."""
        return max(1, round(full * self.scale))


@dataclass(frozen=True)
class Case:
    row: Row
    run: Callable[[Any], float]  # given a warm pool of row.engine, one sample


# ---- running ------------------------------------------------------------------------


@contextmanager
def watchdog() -> Iterator[None]:
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def run_rounds(config: Config, cases: list[Case]) -> None:
    """Each round, every case in turn, in an order shuffled anew each round (seeded)."""
    for round_index in range(config.rounds):
        for case in engines.round_order(round_index, tuple(cases)):
            run_case(config, case)


def run_case(config: Config, case: Case) -> None:
    """One sample, on a fresh pool of the case's engine with every worker up.

    A pool per case, not per engine: a map that ran before on the same pool
    leaves its workers' heaps grown and warm, which flatters whoever runs second.
    """
    row = case.row
    gc.collect()
    try:
        with watchdog(), engines.open_pool(row.engine, config.workers, config.start_method) as pool:
            engines.warm_up(row.engine, pool, config.workers)
            row.samples.append(case.run(pool))
    except Exception as error:
        row.errors.append(f"{type(error).__name__}: {error}")


def check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def peer_notes(*extra: str) -> list[str]:
    notes = [engines.START_METHOD_NOTES.get(name) for name in engines.PEERS]
    return [*extra, *(note for note in notes if note)]


# ---- tiny_map -----------------------------------------------------------------------


def timed_map(engine: str, items: int, chunksize: int | None, maps_before: int = 0) -> Case:
    data = list(range(items))
    expected = list(range(1, items + 1))

    def run(pool: Any) -> float:
        for _ in range(maps_before):
            engines.map_list(engine, pool, tasks.inc, data, chunksize)
        start = perf_counter()
        results = engines.map_list(engine, pool, tasks.inc, data, chunksize)
        seconds = perf_counter() - start
        check(results == expected, f"map over {items} ints returned wrong results")
        return items / seconds

    size = "default" if chunksize is None else f"{chunksize:,}"
    return Case(Row(f"{engine}: map chunksize={size}", engine), run)


def baseline_twin(items: int, chunksize: int | None) -> list[Case]:
    """The --baseline's row for minipool's map of ``items`` with ``chunksize``, if any."""
    return [timed_map(engines.BASELINE.engine, items, chunksize)] if engines.BASELINE else []


def tiny_map(config: Config) -> list[Metric]:
    n, tuned = config.count(TINY_MAP_ITEMS), TUNED_CHUNKSIZE
    cases = [timed_map(MP, n, size) for size in (None, *MP_CHUNKSIZES)]
    for engine in (PPE, *engines.PEERS):
        if engine in engines.ONE_JOB_PER_MESSAGE:
            few = config.count(TINY_MAP_SLOW_ITEMS)
            cases.append(timed_map(engine, few, None))
            cases[-1].row.label += f" [{few:,} items]"
            cases[-1].row.partial = True
        else:
            cases.append(timed_map(engine, n, None))
        cases.append(timed_map(engine, n, tuned))
    mine = timed_map(MINIPOOL, n, None)
    # minipool sizes chunks from measured job times, so a second map on the
    # same pool starts with big chunks: how much the first one's ramp costs.
    second = timed_map(MINIPOOL, n, None, maps_before=1)
    second.row.label += ", 2nd map on the pool (for comparison)"
    cases += [mine, *baseline_twin(n, None), second, timed_map(MINIPOOL, n, tuned)]
    cases += baseline_twin(n, tuned)
    run_rounds(config, cases)
    rows = [case.row for case in cases]
    return [
        Metric(
            "tiny_map",
            f"a list of {n:,} ints, mapped through inc (x + 1) into a list",
            "tasks/s",
            HIGHER,
            rows,
            tuple(row.label for row in rows if row.engine == MP),
            [Target(mine.row.label, ">=", 1.0, relative=True)],
            peer_notes(
                f"{', '.join(engines.ONE_JOB_PER_MESSAGE)} send one job per message by "
                f"default: those rows map {config.count(TINY_MAP_SLOW_ITEMS):,} items only",
                "every row runs on a fresh pool, warmed with 4*workers one-job chunks; "
                "minipool's first map on it includes its chunk-size ramp",
                "reference: the best of the multiprocessing.Pool chunksizes (hand-tuned)",
            ),
        )
    ]


# ---- tiny_submit --------------------------------------------------------------------


def timed_submits(engine: str, jobs: int) -> Case:
    def run(pool: Any) -> float:
        start = perf_counter()
        waits = [engines.submit(engine, pool, tasks.inc, i) for i in range(jobs)]
        results = [wait() for wait in waits]
        seconds = perf_counter() - start
        check(results == list(range(1, jobs + 1)), "submit returned wrong results")
        return seconds / jobs * 1e6

    return Case(Row(f"{engine}: {SUBMIT_CALLS.get(engine, 'submit + result')}", engine), run)


def tiny_submit(config: Config) -> list[Metric]:
    jobs = config.count(TINY_SUBMIT_JOBS)
    with_submit = [engine for engine in engines.everyone() if engine not in engines.NO_SUBMIT]
    cases = [timed_submits(engine, jobs) for engine in with_submit]
    run_rounds(config, cases)
    rows = [case.row for case in cases]
    mine = next(row.label for row in rows if row.engine == MINIPOOL)
    return [
        Metric(
            "tiny_submit",
            f"{jobs:,} single jobs submitted, then every result awaited; wall time per job",
            "us/job",
            LOWER,
            rows,
            (rows[0].label,),
            [
                Target(mine, "<=", SUBMIT_TARGET, relative=True),
                Target(mine, "<=", 0.5, relative=True, stretch=True),
            ],
            peer_notes("joblib has no submit()"),
        )
    ]


# ---- startup ------------------------------------------------------------------------


def startup_seconds(config: Config, engine: str) -> float:
    start = perf_counter()
    with engines.open_pool(engine, config.workers, config.start_method) as pool:
        value = engines.submit(engine, pool, tasks.inc, 1)()
    seconds = perf_counter() - start
    check(value == 2, f"inc(1) returned {value!r}")
    return seconds


def startup(config: Config) -> list[Metric]:
    timed = tuple(engine for engine in engines.everyone() if engine not in engines.NO_LIFECYCLE)
    rows = {
        engine: Row(
            f"{engine}: create, 1 job, {SHUTDOWNS.get(engine, 'shutdown(wait=True)')}", engine
        )
        for engine in timed
    }
    for repeat in range(config.rounds * config.count(STARTUP_REPEATS)):
        for engine in engines.round_order(repeat, timed):
            try:
                with watchdog():
                    rows[engine].samples.append(startup_seconds(config, engine))
            except Exception as error:
                rows[engine].errors.append(f"{type(error).__name__}: {error}")
    ordered = list(rows.values())
    return [
        Metric(
            "startup",
            f"create a {config.workers}-worker pool, run one job, shut down cleanly; "
            f"{config.count(STARTUP_REPEATS)} samples per round",
            "s",
            LOWER,
            ordered,
            (rows[MP].label,),
            [Target(rows[MINIPOOL].label, "<=", 1.0, relative=True)],
            startup_notes(config),
        )
    ]


def startup_notes(config: Config) -> list[str]:
    notes = [
        "multiprocessing.Pool's own `with` calls terminate(), which kills its workers; "
        "close() + join() is the clean shutdown the others do",
        "joblib is left out: it keeps loky's reusable executor, and its workers, alive "
        "between calls, so there is nothing to create or shut down",
    ]
    if config.start_method != "fork":
        notes.append(
            f"under {config.start_method}, ProcessPoolExecutor starts workers on demand: "
            "for one job it may start only one"
        )
    return peer_notes(*notes)


# ---- lazy_memory --------------------------------------------------------------------


@dataclass(frozen=True)
class LazySpec:
    label: str
    engine: str
    items: int
    chunksize: int | None


LAZY_FIELDS = ("rss_growth_mb", "max_ahead", "rate")


def run_child(config: Config, spec: LazySpec) -> dict[str, Any]:
    """One lazy_memory.py run in a fresh interpreter, so its memory baseline is clean."""
    command = [sys.executable, os.path.join(HERE, "lazy_memory.py"), spec.engine, str(spec.items)]
    command += ["--workers", str(config.workers), "--start-method", config.start_method]
    if spec.chunksize is not None:
        command += ["--chunksize", str(spec.chunksize)]
    # A session of its own, so that a child that hangs goes with all its workers.
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = child.communicate(timeout=CHILD_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        raise RuntimeError(f"no result after {CHILD_TIMEOUT_SECONDS} s; killed") from None
    if child.returncode != 0:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"exit status {child.returncode}: {tail}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["rate"] = spec.items / result["seconds"]
    return result


LAZY_CALLS = {
    MP: "Pool.imap",
    MPIRE: "WorkerPool.imap",
    JOBLIB: "Parallel(return_as='generator'), batch_size",
}


def lazy_specs(config: Config) -> tuple[list[LazySpec], LazySpec]:
    """One spec per engine, run every round, and chunksize=1 ProcessPoolExecutor, run once."""
    items, size = config.count(LAZY_ITEMS), LAZY_CHUNKSIZE
    every_round = [
        LazySpec(
            f"{engine}: {LAZY_CALLS.get(engine, 'map')} chunksize={size:,}", engine, items, size
        )
        for engine in engines.everyone()
        if engines.is_peer(engine)  # minipool below; its --baseline is not measured here
    ]
    every_round.append(LazySpec(f"{MINIPOOL}: Pool.map chunksize=None", MINIPOOL, items, None))
    few = config.count(LAZY_PPE_DEFAULT_ITEMS)
    label = f"{PPE}: map chunksize=1 (default) [{few:,} items, 1 run]"
    return every_round, LazySpec(label, PPE, few, None)


def lazy_memory(config: Config) -> list[Metric]:
    every_round, once = lazy_specs(config)
    schedule = [
        spec for r in range(config.rounds) for spec in engines.round_order(r, tuple(every_round))
    ]
    schedule.insert(len(every_round), once)  # after the first round
    specs = [*every_round[:-1], once, every_round[-1]]
    rows = {
        field: {spec: Row(spec.label, spec.engine, partial=spec is once) for spec in specs}
        for field in LAZY_FIELDS
    }
    for spec in schedule:
        try:
            result = run_child(config, spec)
        except Exception as error:
            for by_spec in rows.values():
                by_spec[spec].errors.append(f"{type(error).__name__}: {error}")
            continue
        for field, by_spec in rows.items():
            by_spec[spec].samples.append(result[field])
    by_field = {field: list(by_spec.values()) for field, by_spec in rows.items()}
    return lazy_metrics(config, by_field, once)


def lazy_metrics(config: Config, rows: dict[str, list[Row]], once: LazySpec) -> list[Metric]:
    items = config.count(LAZY_ITEMS)
    mine, reference = rows["rss_growth_mb"][-1].label, (rows["rss_growth_mb"][0].label,)
    title = f"ordered map over a generator of {items:,} ints, consumed one by one"
    scale = items / once.items
    grown = next(row for row in rows["rss_growth_mb"] if row.label == once.label).median
    extrapolated = "-" if grown is None else f"{grown * scale:,.0f} MB"
    notes = [
        "each run is a fresh child process; the chunksize=1 ProcessPoolExecutor row maps only "
        f"{once.items:,} items: it pulls every input up front (a future each), "
        f"so growth and lead scale with the input; for all {items:,}: ~{extrapolated} "
        f"and {items:,} ahead (extrapolated x{scale:.0f}, not measured)"
    ]
    return [
        Metric(
            "lazy_memory",
            f"{title}; peak RSS growth of the caller",
            "MB",
            LOWER,
            rows["rss_growth_mb"],
            reference,
            [Target(mine, "<=", 10.0, False)],
            peer_notes(*notes),
        ),
        Metric(
            "lazy_memory",
            f"{title}; most inputs pulled ahead of the consumer",
            "inputs",
            LOWER,
            rows["max_ahead"],
            reference,
            [Target(mine, "<=", 10_000, False)],
        ),
        Metric(
            "lazy_memory",
            f"{title}; throughput (for information)",
            "tasks/s",
            HIGHER,
            rows["rate"],
            reference,
        ),
    ]


# ---- cpu_bound and skewed: every engine, peers included -------------------------------


def calibrated_iterations(seconds: float) -> int:
    """How many ``tasks.spin`` steps take ``seconds`` here, in this process."""
    probe = 200_000
    took = min(_timed(tasks.spin, probe) for _ in range(3))
    return max(1, int(probe * seconds / took))


def _timed(fn: Callable[..., Any], *args: Any) -> float:
    start = perf_counter()
    fn(*args)
    return perf_counter() - start


def timed_work(items: list[int], score: Callable[[float], float]) -> Callable[[str], Case]:
    """Cases that map ``tasks.spin`` over ``items`` with each engine's default chunking."""
    expected = [tasks.spin(count) for count in sorted(set(items))]
    by_count = dict(zip(sorted(set(items)), expected, strict=True))

    def case(engine: str) -> Case:
        def run(pool: Any) -> float:
            start = perf_counter()
            results = list(engines.lazy_map(engine, pool, tasks.spin, items, None))
            seconds = perf_counter() - start
            check(results == [by_count[count] for count in items], "spin returned wrong results")
            return score(seconds)

        return Case(Row(f"{engine}: default map", engine), run)

    return case


def bare_processes(config: Config, items: list[int]) -> float:
    """Seconds for ``workers`` plain processes to run ``items`` split evenly between them."""
    ctx = multiprocessing.get_context(config.start_method)
    shares = [items[worker :: config.workers] for worker in range(config.workers)]
    start = perf_counter()
    processes = [ctx.Process(target=tasks.spin_share, args=(share,)) for share in shares]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    check(all(process.exitcode == 0 for process in processes), "a bare process failed")
    return perf_counter() - start


def cpu_bound(config: Config) -> list[Metric]:
    iterations = calibrated_iterations(CPU_JOB_SECONDS)
    jobs = config.count(CPU_JOBS)
    items = [iterations] * jobs
    job_seconds = min(_timed(tasks.spin, iterations) for _ in range(5))
    ideal = jobs * job_seconds / config.workers
    make = timed_work(items, lambda seconds: ideal / seconds)
    cases = [make(engine) for engine in engines.everyone()]
    bare = Row(f"{config.workers} bare processes, jobs split evenly in advance", "bare")
    for _ in range(config.rounds):
        bare.samples.append(ideal / bare_processes(config, items))
        run_rounds(replace(config, rounds=1), cases)
    mine = f"{MINIPOOL}: default map"
    return [
        Metric(
            "cpu_bound",
            f"{jobs} pure-Python jobs of ~{job_seconds * 1e3:.1f} ms; parallel efficiency "
            "(the jobs' serial time / workers / wall time)",
            "efficiency",
            HIGHER,
            [bare, *[case.row for case in cases]],
            tuple(case.row.label for case in cases if engines.is_peer(case.row.engine)),
            [Target(mine, ">=", 1.0, relative=True)],
            peer_notes("reference: the best peer's efficiency"),
        )
    ]


def makespan_metric(
    config: Config,
    name: str,
    title: str,
    make: Callable[[str], Case],
    target: Target,
    notes: list[str],
) -> Metric:
    """``make``'s case for every engine, run in rounds, as a makespan-over-ideal metric
    whose reference is the best peer."""
    cases = [make(engine) for engine in engines.everyone()]
    run_rounds(config, cases)
    rows = [case.row for case in cases]
    peers = tuple(row.label for row in rows if engines.is_peer(row.engine))
    return Metric(
        name,
        f"{title}; makespan / ideal (the work / workers)",
        "x ideal",
        LOWER,
        rows,
        peers,
        [target],
        notes,
    )


def skewed(config: Config) -> list[Metric]:
    long, short = (calibrated_iterations(seconds) for seconds in SKEWED_SECONDS)
    longs, shorts = config.count(SKEWED_LONG_JOBS), config.count(SKEWED_SHORT_JOBS)
    items = [long] * longs + [short] * shorts
    work = longs * SKEWED_SECONDS[0] + shorts * SKEWED_SECONDS[1]
    ideal = work / config.workers
    title = (
        f"{longs} jobs of {SKEWED_SECONDS[0] * 1e3:.0f} ms, then "
        f"{shorts} of {SKEWED_SECONDS[1] * 1e3:.0f} ms"
    )
    target = Target(f"{MINIPOOL}: default map", "<=", 1.05, relative=False)
    notes = peer_notes("reference: the best peer; multiprocessing.Pool maps with imap(chunksize=1)")
    make = timed_work(items, lambda seconds: seconds / ideal)
    return [makespan_metric(config, "skewed", title, make, target, notes)]


def mixed_layout(config: Config) -> tuple[int, int, int]:
    """The mixed workload's jobs, long jobs and stride: jobs 0, stride, 2 * stride... are long.

    At least one long job per worker, so that a small ``--scale`` still has a
    long job for every worker to be stuck behind.
    """
    jobs = config.count(MIXED_JOBS)
    longs = min(jobs, max(config.workers, jobs // MIXED_LONG_EVERY))
    return jobs, longs, jobs // longs


def timed_mixed(items: list[int], score: Callable[[float], float]) -> Callable[[str], Case]:
    """Cases that submit ``tasks.spin`` of each of ``items`` up front, then await every result.

    joblib has no submit: it maps the same list through its Parallel generator.
    """
    by_count = {count: tasks.spin(count) for count in set(items)}
    expected = [by_count[count] for count in items]

    def case(engine: str) -> Case:
        def run(pool: Any) -> float:
            start = perf_counter()
            if engine in engines.NO_SUBMIT:
                results = list(engines.lazy_map(engine, pool, tasks.spin, items, None))
            else:
                waits = [engines.submit(engine, pool, tasks.spin, count) for count in items]
                results = [wait() for wait in waits]
            seconds = perf_counter() - start
            check(results == expected, "spin returned wrong results")
            return score(seconds)

        call = "Parallel generator, default batch_size (no submit)"
        if engine not in engines.NO_SUBMIT:
            call = SUBMIT_CALLS.get(engine, "submit + result")
        return Case(Row(f"{engine}: {call}", engine), run)

    return case


def mixed(config: Config) -> list[Metric]:
    long, short = (calibrated_iterations(seconds) for seconds in MIXED_SECONDS)
    jobs, longs, stride = mixed_layout(config)
    items = [long if i % stride == 0 and i < longs * stride else short for i in range(jobs)]
    ideal = (longs * MIXED_SECONDS[0] + (jobs - longs) * MIXED_SECONDS[1]) / config.workers
    title = (
        f"{jobs:,} jobs submitted up front, then every result awaited: {longs} of "
        f"{MIXED_SECONDS[0] * 1e3:.0f} ms (one in {stride}: jobs 0, {stride}, ...) among "
        f"{jobs - longs:,} of {MIXED_SECONDS[1] * 1e3:.0f} ms"
    )
    target = Target(f"{MINIPOOL}: submit + result", "<=", 1.10, relative=False)
    notes = peer_notes(
        "reference: the best peer; the jobs are tasks.spin calibrated here, as in skewed",
        "joblib has no submit(): it maps the same list through its Parallel "
        "generator (batch_size='auto')",
    )
    make = timed_mixed(items, lambda seconds: seconds / ideal)
    return [makespan_metric(config, "mixed", title, make, target, notes)]


def timed_payloads(jobs: int, size: int) -> Callable[[str], Case]:
    def case(engine: str) -> Case:
        def run(pool: Any) -> float:
            start = perf_counter()
            results = engines.lazy_map(engine, pool, tasks.payload, [size] * jobs, None)
            sizes = [len(result) for result in results]
            seconds = perf_counter() - start
            check(sizes == [size] * jobs, "payload returned wrong sizes")
            return jobs * size / seconds / 1e6

        return Case(Row(f"{engine}: default map, {size >> 10:,} KiB", engine), run)

    return case


def big_payload(config: Config) -> list[Metric]:
    jobs = config.count(PAYLOAD_JOBS)
    metrics = []
    for size in PAYLOAD_SIZES:
        cases = [timed_payloads(jobs, size)(engine) for engine in engines.everyone()]
        run_rounds(config, cases)
        rows = [case.row for case in cases]
        mine = next(row.label for row in rows if row.engine == MINIPOOL)
        judged = []
        if size == JUDGED_PAYLOAD:
            judged = [
                Target(mine, ">=", 1.0, relative=True),
                Target(mine, ">=", 2.0, relative=True, stretch=True),
            ]
        metrics.append(
            Metric(
                "big_payload",
                f"{jobs} jobs each returning {size >> 10:,} KiB of bytes",
                "MB/s",
                HIGHER,
                rows,
                tuple(row.label for row in rows if engines.is_peer(row.engine)),
                judged,
                peer_notes("reference: the best peer"),
            )
        )
    return metrics


WORKLOADS: dict[str, Callable[[Config], list[Metric]]] = {
    "tiny_map": tiny_map,
    "tiny_submit": tiny_submit,
    "startup": startup,
    "lazy_memory": lazy_memory,
    "cpu_bound": cpu_bound,
    "skewed": skewed,
    "mixed": mixed,
    "big_payload": big_payload,
}


# ---- the run ------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[2],
        metavar="N",
        help="worker counts; the whole suite runs at each (default: 2)",
    )
    report.add_start_method(parser)
    parser.add_argument("--rounds", type=int, default=5, help="rounds per workload (default: 5)")
    report.add_scale(parser)
    report.add_json(parser, "latest.json")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(WORKLOADS),
        metavar="NAME",
        help=f"run only these workloads: {', '.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also measure minipool/ as it was at this git revision (a tag, a hash, HEAD~3): "
        "a minipool@<rev> row beside each minipool row",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or min(args.workers) < 1:
        parser.error("--rounds and --workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    facts = report.machine_facts(HERE, args.start_method, args.workers, args.rounds)
    facts["scale"] = args.scale
    if args.baseline is not None:
        try:
            base = engines.add_baseline(args.baseline)
        except engines.BaselineError as error:
            print(f"--baseline {args.baseline}: {error}", file=sys.stderr)
            return 2
        facts["baseline"] = {
            "engine": base.engine,
            "revision": base.revision,
            "commit": base.commit,
            "package": engines.BASELINE_PACKAGE,
            "copy": base.copy,
        }
    baseline = engines.BASELINE.engine if engines.BASELINE else None
    report.print_header(facts)
    summary: list[list[str]] = []
    runs = []
    for workers in args.workers:
        config = Config(workers, args.start_method, args.rounds, args.scale)
        print(f"\n######## {workers} workers")
        metrics = []
        for name in args.only or list(WORKLOADS):
            started = perf_counter()
            found = WORKLOADS[name](config)
            for metric in found:
                report.print_metric(metric)
            print(f"  ({name} took {perf_counter() - started:.1f} s)")
            metrics += found
        summary += report.summary_rows(workers, metrics, baseline)
        runs.append({"workers": workers, "metrics": [metric.to_json() for metric in metrics]})
    report.print_summary(summary, baseline)
    if args.json:
        report.write_json(args.json, {"machine": facts, "runs": runs})
    errors = any(row["errors"] for run in runs for m in run["metrics"] for row in m["rows"])
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
