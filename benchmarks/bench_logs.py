"""Worker logs counted in the caller: minipool against the logging cookbook, in one run.

    python benchmarks/bench_logs.py [--jobs 20000] [--workers 2] [--rounds 5]
                                    [--start-method fork] [--json [OUT.json]]

20,000 tiny jobs each log one record in their worker; a sample is the time
from the start of ``map`` until every result is back and every record has
been counted in the caller, as records per second. The reference is the
standard library's cookbook recipe on ``multiprocessing.Pool``: an
``initializer`` that puts a ``QueueHandler`` on a ``multiprocessing.Queue`` in
each worker, and a ``QueueListener`` in the caller. minipool needs no setup:

- ``minipool, logging``: the job calls ``logging.getLogger(...).info``; the
  record comes out of the caller's own logger, where a handler counts it.
- ``minipool, structlog``: the job calls ``minipool.get_logger().info``; a
  ``log_sink`` counts the event dicts.

A sample in which a record is missing is an error, not a figure. Engines take
turns within each round, in an order shuffled anew each round (seeded).
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from time import perf_counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import report  # noqa: E402 -- importable once this file's directory is on sys.path
import tasks  # noqa: E402 -- likewise
from engines import round_order  # noqa: E402 -- likewise
from report import HIGHER, Metric, Row, Target  # noqa: E402 -- likewise

import minipool  # noqa: E402 -- after the path set-up, with the rest

COUNT_DEADLINE_SECONDS = 60.0
LOGGER = "bench.logs"
COOKBOOK = "multiprocessing.Pool + QueueHandler cookbook"
MINIPOOL_LOGGING = "minipool, logging records"
MINIPOOL_STRUCTLOG = "minipool, structlog events"
TARGET_RATIO = 2.0


class Counter:
    """Counts events from any thread; ``done`` is set when ``expected`` have come."""

    def __init__(self) -> None:
        self.expected = self.count = 0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def start(self, expected: int) -> None:
        with self._lock:
            self.expected = expected
            self.count = 0
            self.done.clear()

    def __call__(self, _event: object) -> None:
        with self._lock:
            self.count += 1
            if self.count == self.expected:
                self.done.set()

    def wait(self) -> None:
        if not self.done.wait(COUNT_DEADLINE_SECONDS) or self.count != self.expected:
            raise AssertionError(f"{self.count} of {self.expected} log records arrived")


class CountingHandler(logging.Handler):
    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self._counter = counter

    def emit(self, record: logging.LogRecord) -> None:
        self._counter(record)


def timed(run: Callable[[], None], counter: Counter, jobs: int) -> float:
    """Records per second: from the start of ``run`` until ``jobs`` records were counted."""
    counter.start(jobs)
    started = perf_counter()
    run()
    counter.wait()
    return jobs / (perf_counter() - started)


def check_results(results: list[int], jobs: int) -> None:
    if results != list(range(1, jobs + 1)):
        raise AssertionError("wrong results")


def cookbook(jobs: int, workers: int, method: str) -> float:
    ctx = multiprocessing.get_context(method)
    queue = ctx.Queue()
    counter = Counter()
    listener = logging.handlers.QueueListener(queue, CountingHandler(counter))
    listener.start()
    try:
        with ctx.Pool(workers, initializer=tasks.install_queue_handler, initargs=(queue,)) as pool:
            pool.map(abs, range(workers * 4))  # the workers are up

            def run() -> None:
                check_results(pool.map(tasks.log_record, range(jobs)), jobs)

            rate = timed(run, counter, jobs)
            pool.close()
            pool.join()
    finally:
        listener.stop()
    return rate


def minipool_logging(jobs: int, workers: int, method: str) -> float:
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.INFO)  # before the pool starts: workers ship INFO and up
    logger.propagate = False
    counter = Counter()
    handler = CountingHandler(counter)
    logger.addHandler(handler)
    try:
        with minipool.Pool(workers, start_method=method) as pool:
            list(pool.map(abs, range(workers * 4)))

            def run() -> None:
                check_results(list(pool.map(tasks.log_record, range(jobs))), jobs)

            return timed(run, counter, jobs)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def minipool_structlog(jobs: int, workers: int, method: str) -> float:
    counter = Counter()
    with minipool.Pool(workers, start_method=method, log_sink=counter) as pool:
        list(pool.map(abs, range(workers * 4)))

        def run() -> None:
            check_results(list(pool.map(tasks.log_event, range(jobs))), jobs)

        return timed(run, counter, jobs)


ENGINES: dict[str, Callable[[int, int, str], float]] = {
    COOKBOOK: cookbook,
    MINIPOOL_LOGGING: minipool_logging,
    MINIPOOL_STRUCTLOG: minipool_structlog,
}


def measure(args: argparse.Namespace) -> Metric:
    rows = {label: Row(label, label.split(",")[0]) for label in ENGINES}
    for round_index in range(args.rounds):
        for label in round_order(round_index, tuple(ENGINES)):
            try:
                rows[label].samples.append(
                    ENGINES[label](args.jobs, args.workers, args.start_method)
                )
            except Exception as error:
                rows[label].errors.append(f"{type(error).__name__}: {error}")
    return Metric(
        workload="logs",
        title=f"{args.jobs:,} jobs each logging one record, all counted in the caller",
        unit="records/s",
        better=HIGHER,
        rows=list(rows.values()),
        reference_candidates=(COOKBOOK,),
        targets=[
            Target(MINIPOOL_LOGGING, ">=", TARGET_RATIO, relative=True),
            Target(MINIPOOL_STRUCTLOG, ">=", TARGET_RATIO, relative=True),
        ],
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per sample (20000)")
    report.add_run_options(parser, rounds=5, json_name="logs.json")
    args = parser.parse_args(argv)
    if min(args.jobs, args.workers, args.rounds) < 1:
        parser.error("--jobs, --workers and --rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    facts = report.machine_facts(HERE, args.start_method, [args.workers], args.rounds)
    report.print_header(facts)
    return report.finish(args.json, facts, [measure(args)])


if __name__ == "__main__":
    sys.exit(main())
