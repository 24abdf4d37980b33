"""minipool against multiprocessing.Pool and ProcessPoolExecutor, in one run.

    python benchmarks/bench_engine.py [--workers N ...] [--start-method fork]
                                      [--rounds R] [--json [OUT.json]] [--only NAME ...]

Every engine runs in the same process (``lazy_memory``: in fresh child
processes of it) with the same worker count and start method. The engines
take turns within each round, in an order that rotates from round to round,
so that a noisy neighbour slows all of them alike; each table gives the
median, min and max over the rounds and the median's ratio to
``multiprocessing.Pool``. See benchmarks/README.md for what each workload
measures.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from time import perf_counter
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import engines  # noqa: E402 -- importable once this file's directory is on sys.path
import report  # noqa: E402 -- likewise
import tasks  # noqa: E402 -- likewise
from engines import MINIPOOL, MP, PPE  # noqa: E402 -- likewise
from report import HIGHER, LOWER, Metric, Row, Target  # noqa: E402 -- likewise

TINY_MAP_ITEMS = 200_000
# ProcessPoolExecutor.map's default chunksize=1 manages some 10,000 jobs/s
# here: the full list would cost ~20 s per round, so it gets a tenth.
TINY_MAP_PPE_DEFAULT_ITEMS = 20_000
# multiprocessing.Pool.map is given each of these; the best median is the reference.
MP_CHUNKSIZES = (None, 1_000, 5_000, 10_000)
TUNED_CHUNKSIZE = 10_000
TINY_SUBMIT_JOBS = 20_000
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
PAYLOAD_JOBS = 100
PAYLOAD_SIZES = (64 << 10, 1 << 20, 4 << 20, 16 << 20)
# A hang is a finding, not a reason to sit forever: dump every thread's stack and exit.
WATCHDOG_SECONDS = 300
CHILD_TIMEOUT_SECONDS = 300
DEFAULT_JSON = os.path.join(HERE, "results", "latest.json")


@dataclass(frozen=True)
class Config:
    workers: int
    start_method: str
    rounds: int


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
    """Each round, each engine in turn: a fresh pool, warmed up, runs that engine's cases."""
    in_cases = tuple(dict.fromkeys(case.row.engine for case in cases))
    for round_index in range(config.rounds):
        for engine in engines.rotated(round_index, in_cases):
            mine = [case for case in cases if case.row.engine == engine]
            if mine:
                run_engine_cases(config, engine, mine)


def run_engine_cases(config: Config, engine: str, cases: list[Case]) -> None:
    try:
        with watchdog(), engines.open_pool(engine, config.workers, config.start_method) as pool:
            engines.warm_up(engine, pool, config.workers)
            for case in cases:
                gc.collect()
                try:
                    case.row.samples.append(case.run(pool))
                except Exception as error:
                    case.row.errors.append(f"{type(error).__name__}: {error}")
    except Exception as error:
        for case in cases:
            case.row.errors.append(f"pool failed: {type(error).__name__}: {error}")


def check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


# ---- tiny_map -----------------------------------------------------------------------


def timed_map(items: int, chunksize: int | None) -> Callable[[Any], float]:
    data = list(range(items))
    expected = list(range(1, items + 1))

    def run(pool: Any) -> float:
        start = perf_counter()
        results = list(pool.map(tasks.inc, data, chunksize=chunksize))
        seconds = perf_counter() - start
        check(results == expected, f"map over {items} ints returned wrong results")
        return items / seconds

    return run


def tiny_map(config: Config) -> list[Metric]:
    n, few, tuned = TINY_MAP_ITEMS, TINY_MAP_PPE_DEFAULT_ITEMS, TUNED_CHUNKSIZE
    mp_default = math.ceil(n / (4 * config.workers))
    specs = [
        (MP, f"Pool.map chunksize=None (its own len/(4*workers) = {mp_default:,})", None, n),
        *[(MP, f"Pool.map chunksize={size:,}", size, n) for size in MP_CHUNKSIZES if size],
        (PPE, f"Executor.map chunksize=1 (default) [{few:,} items]", 1, few),
        (PPE, f"Executor.map chunksize={tuned:,}", tuned, n),
        (MINIPOOL, "Pool.map chunksize=None", None, n),
        # minipool sizes chunks from measured job times, so a second map on the
        # same pool starts with big chunks: how much the first one's ramp costs.
        (MINIPOOL, "Pool.map chunksize=None, 2nd map on the pool (for comparison)", None, n),
        (MINIPOOL, f"Pool.map chunksize={tuned:,} (for comparison)", tuned, n),
    ]
    cases = [
        Case(Row(f"{engine}: {label}", engine), timed_map(items, size))
        for engine, label, size, items in specs
    ]
    run_rounds(config, cases)
    rows = [case.row for case in cases]
    return [
        Metric(
            "tiny_map",
            f"list(map(inc, a list of {n:,} ints))",
            "tasks/s",
            HIGHER,
            rows,
            tuple(row.label for row in rows if row.engine == MP),
            [Target(f"{MINIPOOL}: Pool.map chunksize=None", ">=", 0.8, relative=True)],
            [
                f"the chunksize=1 ProcessPoolExecutor row maps {few:,} items only (the rate "
                "is measured on those); at ~10k tasks/s the full list would take too long",
                "each round opens a fresh pool per engine, warmed with 4*workers one-job "
                "chunks; minipool's first map on it includes its chunk-size ramp",
                "reference: the best of the multiprocessing.Pool chunksizes (hand-tuned)",
            ],
        )
    ]


# ---- tiny_submit --------------------------------------------------------------------


def timed_submits(engine: str) -> Callable[[Any], float]:
    def run(pool: Any) -> float:
        start = perf_counter()
        waits = [engines.submit(engine, pool, tasks.inc, i) for i in range(TINY_SUBMIT_JOBS)]
        results = [wait() for wait in waits]
        seconds = perf_counter() - start
        check(results == list(range(1, TINY_SUBMIT_JOBS + 1)), "submit returned wrong results")
        return seconds / TINY_SUBMIT_JOBS * 1e6

    return run


def tiny_submit(config: Config) -> list[Metric]:
    how = {MP: "apply_async + get", PPE: "submit + result", MINIPOOL: "submit + result"}
    cases = [
        Case(Row(f"{engine}: {how[engine]}", engine), timed_submits(engine))
        for engine in engines.ENGINES
    ]
    run_rounds(config, cases)
    rows = [case.row for case in cases]
    return [
        Metric(
            "tiny_submit",
            f"{TINY_SUBMIT_JOBS:,} single jobs submitted, then every result awaited; "
            "wall time per job",
            "us/job",
            LOWER,
            rows,
            (rows[0].label,),
            [Target(rows[2].label, "<=", 1.5, relative=True)],
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
    how = {MP: "close() + join()", PPE: "shutdown(wait=True)", MINIPOOL: "shutdown(wait=True)"}
    rows = {engine: Row(f"{engine}: create, 1 job, {how[engine]}", engine) for engine in how}
    for repeat in range(config.rounds * STARTUP_REPEATS):
        for engine in engines.rotated(repeat):
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
            f"{STARTUP_REPEATS} samples per round",
            "s",
            LOWER,
            ordered,
            (ordered[0].label,),
            [Target(ordered[2].label, "<=", 2.0, relative=True)],
            startup_notes(config),
        )
    ]


def startup_notes(config: Config) -> list[str]:
    notes = [
        "multiprocessing.Pool's own `with` calls terminate(), which kills its workers; "
        "close() + join() is the clean shutdown the others do"
    ]
    if config.start_method != "fork":
        notes.append(
            f"under {config.start_method}, ProcessPoolExecutor starts workers on demand: "
            "for one job it may start only one"
        )
    return notes


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


def lazy_specs() -> tuple[dict[str, LazySpec], LazySpec]:
    """One spec per engine, run every round, and chunksize=1 ProcessPoolExecutor, run once."""
    size = LAZY_CHUNKSIZE
    every_round = {
        MP: LazySpec(f"{MP}: Pool.imap chunksize={size:,}", MP, LAZY_ITEMS, size),
        PPE: LazySpec(f"{PPE}: Executor.map chunksize={size:,}", PPE, LAZY_ITEMS, size),
        MINIPOOL: LazySpec(f"{MINIPOOL}: Pool.map chunksize=None", MINIPOOL, LAZY_ITEMS, None),
    }
    label = f"{PPE}: Executor.map chunksize=1 (default) [{LAZY_PPE_DEFAULT_ITEMS:,} items, 1 run]"
    return every_round, LazySpec(label, PPE, LAZY_PPE_DEFAULT_ITEMS, None)


def lazy_memory(config: Config) -> list[Metric]:
    every_round, once = lazy_specs()
    schedule = [every_round[engine] for r in range(config.rounds) for engine in engines.rotated(r)]
    schedule.insert(len(engines.ENGINES), once)  # after the first round
    specs = [every_round[MP], every_round[PPE], once, every_round[MINIPOOL]]
    rows = {field: {spec: Row(spec.label, spec.engine) for spec in specs} for field in LAZY_FIELDS}
    for spec in schedule:
        try:
            result = run_child(config, spec)
        except Exception as error:
            for by_spec in rows.values():
                by_spec[spec].errors.append(f"{type(error).__name__}: {error}")
            continue
        for field, by_spec in rows.items():
            by_spec[spec].samples.append(result[field])
    return lazy_metrics({field: list(by_spec.values()) for field, by_spec in rows.items()})


def lazy_metrics(rows: dict[str, list[Row]]) -> list[Metric]:
    mine, reference = rows["rss_growth_mb"][3].label, (rows["rss_growth_mb"][0].label,)
    title = f"ordered map over a generator of {LAZY_ITEMS:,} ints, consumed one by one"
    scale = LAZY_ITEMS / LAZY_PPE_DEFAULT_ITEMS
    grown = rows["rss_growth_mb"][2].median
    extrapolated = "-" if grown is None else f"{grown * scale:,.0f} MB"
    notes = [
        "each run is a fresh child process; the chunksize=1 ProcessPoolExecutor row maps only "
        f"{LAZY_PPE_DEFAULT_ITEMS:,} items: it pulls every input up front (a future each), "
        f"so growth and lead scale with the input; for all {LAZY_ITEMS:,}: ~{extrapolated} "
        f"and {LAZY_ITEMS:,} ahead (extrapolated x{scale:.0f}, not measured)"
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
            notes,
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


def all_engines() -> tuple[str, ...]:
    return engines.ENGINES + engines.PEERS


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
    items = [iterations] * CPU_JOBS
    job_seconds = min(_timed(tasks.spin, iterations) for _ in range(5))
    ideal = CPU_JOBS * job_seconds / config.workers
    make = timed_work(items, lambda seconds: ideal / seconds)
    cases = [make(engine) for engine in all_engines()]
    bare = Row(f"{config.workers} bare processes, jobs split evenly in advance", "bare")
    for _ in range(config.rounds):
        bare.samples.append(ideal / bare_processes(config, items))
        run_rounds(Config(config.workers, config.start_method, 1), cases)
    mine = f"{MINIPOOL}: default map"
    return [
        Metric(
            "cpu_bound",
            f"{CPU_JOBS} pure-Python jobs of ~{job_seconds * 1e3:.1f} ms; parallel efficiency "
            "(the jobs' serial time / workers / wall time)",
            "efficiency",
            HIGHER,
            [bare, *[case.row for case in cases]],
            (bare.label,),
            [Target(mine, ">=", 0.95, relative=True)],
            peer_notes(),
        )
    ]


def peer_notes() -> list[str]:
    notes = [engines.START_METHOD_NOTES.get(name) for name in engines.PEERS]
    return [note for note in notes if note]


def skewed(config: Config) -> list[Metric]:
    long, short = (calibrated_iterations(seconds) for seconds in SKEWED_SECONDS)
    items = [long] * SKEWED_LONG_JOBS + [short] * SKEWED_SHORT_JOBS
    work = SKEWED_LONG_JOBS * SKEWED_SECONDS[0] + SKEWED_SHORT_JOBS * SKEWED_SECONDS[1]
    ideal = work / config.workers
    make = timed_work(items, lambda seconds: seconds / ideal)
    cases = [make(engine) for engine in all_engines()]
    run_rounds(config, cases)
    rows = [case.row for case in cases]
    return [
        Metric(
            "skewed",
            f"{SKEWED_LONG_JOBS} jobs of {SKEWED_SECONDS[0] * 1e3:.0f} ms, then "
            f"{SKEWED_SHORT_JOBS} of {SKEWED_SECONDS[1] * 1e3:.0f} ms; makespan / ideal "
            "(the work / workers)",
            "x ideal",
            LOWER,
            rows,
            tuple(row.label for row in rows if row.engine != MINIPOOL),
            [Target(f"{MINIPOOL}: default map", "<=", 1.05, relative=False)],
            [
                "reference: the best peer; multiprocessing.Pool maps with imap(chunksize=1)",
                *peer_notes(),
            ],
        )
    ]


def timed_payloads(size: int) -> Callable[[str], Case]:
    def case(engine: str) -> Case:
        def run(pool: Any) -> float:
            start = perf_counter()
            sizes = [
                len(result)
                for result in engines.lazy_map(
                    engine, pool, tasks.payload, [size] * PAYLOAD_JOBS, None
                )
            ]
            seconds = perf_counter() - start
            check(sizes == [size] * PAYLOAD_JOBS, "payload returned wrong sizes")
            return PAYLOAD_JOBS * size / seconds / 1e6

        return Case(Row(f"{engine}: default map, {size >> 10:,} KiB", engine), run)

    return case


def big_payload(config: Config) -> list[Metric]:
    metrics = []
    for size in PAYLOAD_SIZES:
        cases = [timed_payloads(size)(engine) for engine in all_engines()]
        run_rounds(config, cases)
        rows = [case.row for case in cases]
        judged = [Target(rows[2].label, ">=", 1.0, relative=True)] if size == 4 << 20 else []
        metrics.append(
            Metric(
                "big_payload",
                f"{PAYLOAD_JOBS} jobs each returning {size >> 10:,} KiB of bytes",
                "MB/s",
                HIGHER,
                rows,
                tuple(row.label for row in rows if row.engine != MINIPOOL),
                judged,
                ["reference: the best peer", *peer_notes()],
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
    parser.add_argument(
        "--start-method",
        default="fork",
        choices=multiprocessing.get_all_start_methods(),
        help="start method for all three engines (default: fork)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds per workload (default: 5)")
    parser.add_argument(
        "--json",
        nargs="?",
        const=DEFAULT_JSON,
        default=None,
        metavar="OUT",
        help=f"write raw numbers as JSON (default path: {DEFAULT_JSON})",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(WORKLOADS),
        metavar="NAME",
        help=f"run only these workloads: {', '.join(WORKLOADS)}",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or min(args.workers) < 1:
        parser.error("--rounds and --workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    facts = report.machine_facts(HERE, args.start_method, args.workers, args.rounds)
    report.print_header(facts)
    summary: list[list[str]] = []
    runs = []
    for workers in args.workers:
        config = Config(workers, args.start_method, args.rounds)
        print(f"\n######## {workers} workers")
        metrics = []
        for name in args.only or list(WORKLOADS):
            started = perf_counter()
            found = WORKLOADS[name](config)
            for metric in found:
                report.print_metric(metric)
            print(f"  ({name} took {perf_counter() - started:.1f} s)")
            metrics += found
        summary += report.summary_rows(workers, metrics)
        runs.append({"workers": workers, "metrics": [metric.to_json() for metric in metrics]})
    report.print_summary(summary)
    if args.json:
        report.write_json(args.json, {"machine": facts, "runs": runs})
    errors = any(row["errors"] for run in runs for m in run["metrics"] for row in m["rows"])
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
