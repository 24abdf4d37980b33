"""Typical calls that must type-check (``mypy minipool tests/typecheck_calls.py``); not run."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import Future

import minipool


def double(x: int) -> int:
    return 2 * x


def add(x: int, y: int, *, scale: float = 1.0) -> float:
    return (x + y) * scale


def typical_calls() -> None:
    with minipool.Pool(2, init=dict, max_tasks_per_worker=100) as pool:
        doubled: Future[int] = pool.submit(double, 3)
        scaled: Future[float] = pool.submit(add, 1, 2, scale=0.5)
        results: Iterator[int] = pool.map(double, range(10), ordered=False, chunksize=None)
        stats: minipool.PoolStats = pool.stats
        total: int = doubled.result() + sum(results) + stats.completed
        print(total, scaled.result())


def process_pool_executor_calls() -> None:
    """A script written for ProcessPoolExecutor, with only the class swapped."""
    context = multiprocessing.get_context("spawn")
    with minipool.Pool(
        max_workers=2, mp_context=context, initializer=dict, initargs=(), max_tasks_per_child=10
    ) as pool:
        print(pool.submit(double, 3).result(), list(pool.map(double, range(3))))


def logging_calls(events: list[dict[str, object]]) -> None:
    with minipool.Pool(2, log_sink=events.append, log_level="info") as pool:
        pool.submit(double, 1).result()
    log = minipool.get_logger(run=1)
    log.info("done", jobs=1)
    log.bind(step=2).warning("slow")


def cluster_calls() -> None:
    with minipool.Pool(cluster="tcp://10.0.0.5:8786", task_timeout=60, retries=2) as pool:
        doubled: Future[int] = pool.submit(double, 3)
        print(doubled.result(), list(pool.map(double, range(10))))
    with minipool.Pool(4, cluster="local") as local:
        print(local.workers)
