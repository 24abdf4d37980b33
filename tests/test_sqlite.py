"""A realistic init: each worker opens its own SQLite connection and closes it at teardown."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import jobs

import minipool

MakePool = Callable[..., minipool.Pool]

ROWS = 1003  # not a multiple of RowWriter.BATCH: the last rows reach the file only at teardown


def test_per_worker_connections_write_every_row(make_pool: MakePool, tmp_path: Path) -> None:
    """Rows buffered by jobs through worker_state() are all committed by the workers' teardown."""
    database = tmp_path / "items.db"
    connection = sqlite3.connect(database)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE items (value INTEGER PRIMARY KEY, pid INTEGER)")
        connection.commit()
    finally:
        connection.close()
    pool = make_pool(init=jobs.open_row_writer, init_args=(str(database),))
    assert sorted(pool.map(jobs.insert_row, range(ROWS), ordered=False)) == list(range(ROWS))
    pool.shutdown()
    connection = sqlite3.connect(database)
    try:
        values = [value for (value,) in connection.execute("SELECT value FROM items")]
        pids = {pid for (pid,) in connection.execute("SELECT DISTINCT pid FROM items")}
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    finally:
        connection.close()
    assert sorted(values) == list(range(ROWS))
    assert 1 <= len(pids) <= pool.workers
    assert mode == "wal"
