"""The same batch job on this machine's processes or on a Dask cluster: only ``cluster`` changes.

Counting the primes in ranges of integers: each worker builds a table of
small primes once, in a generator ``init`` (the stand-in for a model or a
connection that every job needs and no job should rebuild), and logs when it
tears it down. Jobs read the table with ``minipool.worker_state()`` and log
with ``minipool.get_logger()``; their events come back to this process,
whichever machine ran them.

    python examples/dask_cluster.py                          # worker processes here
    python examples/dask_cluster.py --cluster local          # a Dask cluster on loopback
    python examples/dask_cluster.py --cluster tcp://10.0.0.5:8786

For a cluster of your own, start Dask's scheduler and workers with Dask's
commands, on machines where minipool and this file's module are importable:

    dask scheduler                         # prints tcp://<host>:8786
    dask worker tcp://<host>:8786          # on each machine, as many as you like

It checks the total against a count made in this process, and exits 1 if
they differ.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Iterator

import structlog

import minipool

# Every job's range fits below this squared, so the table is all it needs.
TABLE_LIMIT = 100_000


def primes_up_to(limit: int) -> list[int]:
    """The sieve of Eratosthenes."""
    sieve = bytearray([1]) * (limit + 1)
    sieve[:2] = b"\0\0"
    for n in range(2, math.isqrt(limit) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytes(len(range(n * n, limit + 1, n)))
    return [n for n in range(limit + 1) if sieve[n]]


def load_prime_table(limit: int) -> Iterator[list[int]]:
    """Worker init: the primes up to ``limit``, built once per worker process."""
    table = primes_up_to(limit)
    minipool.get_logger().info("prime table built", primes=len(table), pid=os.getpid())
    yield table
    minipool.get_logger().info("prime table dropped", pid=os.getpid())


def count_primes(start: int, stop: int) -> int:
    """A job: how many primes lie in ``[start, stop)``."""
    table: list[int] = minipool.worker_state()
    found = sum(1 for n in range(max(start, 2), stop) if _is_prime(n, table))
    if start % 1_000_000 == 0:
        minipool.get_logger().info("range counted", start=start, primes=found)
    return found


def _is_prime(n: int, table: list[int]) -> bool:
    root = math.isqrt(n)
    for p in table:
        if p > root:
            return True
        if n % p == 0:
            return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cluster",
        help="a Dask scheduler address, or 'local' (default: this machine's processes)",
    )
    parser.add_argument("--workers", type=int, help="worker processes here or with 'local'")
    parser.add_argument("--limit", type=int, default=2_000_000, help="count primes below this")
    parser.add_argument("--step", type=int, default=20_000, help="integers per job")
    args = parser.parse_args()
    if args.limit > TABLE_LIMIT**2:
        parser.error(f"--limit must be at most {TABLE_LIMIT**2}")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(20))  # info and up

    starts = range(0, args.limit, args.step)
    stops = (min(start + args.step, args.limit) for start in starts)
    started = time.perf_counter()
    with minipool.Pool(
        args.workers, init=load_prime_table, init_args=(TABLE_LIMIT,), cluster=args.cluster
    ) as pool:
        total = sum(pool.map(count_primes, starts, stops, progress=sys.stderr.isatty()))
        stats = pool.stats
    elapsed = time.perf_counter() - started

    expected = len(primes_up_to(args.limit - 1))
    where = f"Dask cluster {args.cluster}" if args.cluster else "this machine's processes"
    print(
        f"{total} primes below {args.limit:,} ({stats.completed} jobs on {where}, "
        f"{elapsed:.2f} s); counted here: {expected}"
    )
    return 0 if total == expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
