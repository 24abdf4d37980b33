"""The three process pools under comparison, behind one small interface.

Every engine gets the same worker count and the same start method (through a
``multiprocessing`` context), and each is shut down cleanly: all pending work
finished, every worker joined.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

import tasks

import minipool

MP = "mp"
PPE = "ppe"
MINIPOOL = "minipool"
# The order of round 1; later rounds rotate it, so that no engine always runs
# first (cold caches) or last (after the others' garbage).
ENGINES = (MP, PPE, MINIPOOL)
NAMES = {
    MP: "multiprocessing.Pool",
    PPE: "ProcessPoolExecutor",
    MINIPOOL: "minipool.Pool",
}


def rotated(round_index: int) -> tuple[str, ...]:
    shift = round_index % len(ENGINES)
    return ENGINES[shift:] + ENGINES[:shift]


@contextmanager
def open_pool(engine: str, workers: int, start_method: str) -> Iterator[Any]:
    """A started pool of ``engine``; on exit, a clean shutdown that waits for the workers."""
    ctx = multiprocessing.get_context(start_method)
    if engine == MP:
        pool = ctx.Pool(workers)
        try:
            yield pool
        except BaseException:
            pool.terminate()
            pool.join()
            raise
        # multiprocessing.Pool's own ``with`` calls terminate(), which kills the
        # workers; close() + join() is the clean shutdown the other two do.
        pool.close()
        pool.join()
    elif engine == PPE:
        with ProcessPoolExecutor(workers, mp_context=ctx) as executor:
            yield executor
    elif engine == MINIPOOL:
        with minipool.Pool(workers, start_method=start_method) as mini:
            yield mini
    else:
        raise ValueError(f"unknown engine {engine!r}; pick one of {', '.join(ENGINES)}")


def submit(engine: str, pool: Any, fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """Start ``fn(*args)``; return the call that waits for its result."""
    if engine == MP:
        return pool.apply_async(fn, args).get
    return pool.submit(fn, *args).result


def lazy_map(
    engine: str, pool: Any, fn: Callable[..., Any], items: Iterable[Any], chunksize: int | None
) -> Iterator[Any]:
    """Each engine's ordered map that returns an iterator (``imap`` for multiprocessing)."""
    if engine == MP:
        return pool.imap(fn, items, chunksize or 1)
    if engine == PPE:
        return pool.map(fn, items, chunksize=chunksize or 1)
    return pool.map(fn, items, chunksize=chunksize)


def warm_up(pool: Any, workers: int) -> None:
    """Run a few tiny jobs, one per chunk, so every worker is up before the clock starts.

    Tiny jobs, not sleeps: minipool sizes its chunks from measured job times,
    and a slow warm-up job would make it start the timed run with tiny chunks.
    """
    count = 4 * workers
    if list(pool.map(tasks.inc, range(count), chunksize=1)) != list(range(1, count + 1)):
        raise AssertionError("the warm-up jobs returned wrong results")
