"""Parallel ETL into SQLite: each worker keeps its own connection.

Raw sensor readings (CSV text, a batch per job) are parsed, cleaned and
loaded into one SQLite database by a pool of workers. A database connection
cannot cross a process boundary, so each worker opens its own in a generator
``init`` (with a busy timeout, so that concurrent writers queue instead of
failing; the database uses the WAL journal, so readers never block) and
closes it in the teardown after ``yield``. Jobs reach the connection
through ``minipool.worker_state()``.

    python examples/sqlite_etl.py                  # 200 batches x 500 rows
    python examples/sqlite_etl.py --batches 20 --rows 100 --db /tmp/etl.db

It checks the row count at the end and exits non-zero if any row is missing.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import minipool

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    sensor   TEXT    NOT NULL,
    at       INTEGER NOT NULL,
    celsius  REAL    NOT NULL,
    loaded_by INTEGER NOT NULL
)
"""


def open_database(path: str) -> Iterator[sqlite3.Connection]:
    """Worker init: one connection per worker process, closed when the worker exits."""
    # timeout= is SQLite's busy timeout: a writer waits its turn instead of failing.
    connection = sqlite3.connect(path, timeout=30.0)
    try:
        yield connection
    finally:
        connection.commit()
        connection.close()


def make_batch(batch: int, rows: int) -> str:
    """Raw CSV text as a sensor gateway would deliver it, with the odd bad line."""
    rng = random.Random(batch)
    lines = []
    for row in range(rows):
        fahrenheit = rng.uniform(-4.0, 104.0)
        lines.append(f"sensor-{rng.randrange(50):02d},{batch * rows + row},{fahrenheit:.2f}")
    return "\n".join(lines)


def load_batch(raw: str) -> int:
    """A job: parse, convert to Celsius, insert. Returns the number of rows loaded."""
    rows = []
    for line in raw.splitlines():
        sensor, at, fahrenheit = line.split(",")
        rows.append((sensor, int(at), (float(fahrenheit) - 32.0) * 5.0 / 9.0, os.getpid()))
    connection: sqlite3.Connection = minipool.worker_state()
    with connection:  # one short transaction per batch, so writers take turns
        connection.executemany("INSERT INTO readings VALUES (?, ?, ?, ?)", rows)
    return len(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200, help="jobs to run (default 200)")
    parser.add_argument("--rows", type=int, default=500, help="rows per batch (default 500)")
    parser.add_argument("--workers", type=int, default=None, help="default: one per CPU")
    parser.add_argument("--db", help="database file (default: a temporary one, removed at the end)")
    args = parser.parse_args()
    if args.db is not None:
        return load(args, args.db)
    with tempfile.TemporaryDirectory(prefix="minipool-etl-") as directory:
        return load(args, os.path.join(directory, "readings.db"))


def load(args: argparse.Namespace, path: str) -> int:
    """Load the batches into a new database at ``path``, and check what it holds."""
    Path(path).unlink(missing_ok=True)
    with sqlite3.connect(path) as setup:
        # WAL is a property of the database file, set once here: readers then
        # never block the writer. (Switching it in every worker's init races.)
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute(SCHEMA)

    started = time.perf_counter()
    batches = (make_batch(batch, args.rows) for batch in range(args.batches))
    with minipool.Pool(args.workers, init=open_database, init_args=(path,)) as pool:
        loaded = sum(pool.map(load_batch, batches, progress=True))
        workers = pool.workers
    elapsed = time.perf_counter() - started

    with sqlite3.connect(path) as check:
        (count,) = check.execute("SELECT COUNT(*) FROM readings").fetchone()
        (writers,) = check.execute("SELECT COUNT(DISTINCT loaded_by) FROM readings").fetchone()
    expected = args.batches * args.rows
    print(
        f"loaded {count} rows (expected {expected}) into {path} with {workers} workers "
        f"({writers} worker processes wrote) in {elapsed:.2f} s"
    )
    if count != expected or loaded != expected:
        print(f"MISMATCH: the jobs reported {loaded} rows, the database holds {count}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
