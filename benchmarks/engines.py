"""The process pools under comparison, behind one small interface.

The standard library's two and minipool are always there; loky, pebble,
mpire and joblib come from the ``bench`` extra and are measured when
installed (``PEERS``). Every engine gets the same worker count and, where it
allows, the same start method (``START_METHOD_NOTES`` says where not); each is
shut down cleanly: all pending work finished, every worker joined.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import tasks

import minipool

MP = "mp"
PPE = "ppe"
MINIPOOL = "minipool"
LOKY = "loky"
PEBBLE = "pebble"
MPIRE = "mpire"
JOBLIB = "joblib"
# The order of round 1; later rounds rotate it, so that no engine always runs
# first (cold caches) or last (after the others' garbage).
ENGINES = (MP, PPE, MINIPOOL)
# Third-party peers, each measured when its package is installed.
PEERS = tuple(name for name in (LOKY, PEBBLE, MPIRE, JOBLIB) if importlib.util.find_spec(name))
NAMES = {
    MP: "multiprocessing.Pool",
    PPE: "ProcessPoolExecutor",
    MINIPOOL: "minipool.Pool",
    LOKY: "loky.ProcessPoolExecutor",
    PEBBLE: "pebble.ProcessPool",
    MPIRE: "mpire.WorkerPool",
    JOBLIB: "joblib.Parallel",
}
START_METHOD_NOTES = {
    LOKY: "loky refuses fork; it runs with its own start method (spawn-like) under fork",
    JOBLIB: "joblib runs on its default loky backend, whatever the start method",
    MPIRE: "mpire runs with keep_alive=True, so that its workers outlive one map as the "
    "other pools' do",
}
# Engines whose map sends one job per message unless told a chunksize: their
# default rows map fewer items, or a round would take minutes.
ONE_JOB_PER_MESSAGE = (PPE, LOKY, PEBBLE)
# Engines without a submit(): the workloads that need one leave them out.
NO_SUBMIT = (JOBLIB,)
# joblib keeps loky's reusable executor, and its workers, alive between calls:
# there is no pool to create and shut down.
NO_LIFECYCLE = (JOBLIB,)

T = TypeVar("T")


def everyone() -> tuple[str, ...]:
    """The standard library's pools, minipool and every installed peer."""
    return ENGINES + PEERS


def rotated(round_index: int, items: tuple[T, ...]) -> tuple[T, ...]:
    shift = round_index % len(items)
    return items[shift:] + items[:shift]


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
        with _open_peer(engine, workers, start_method) as pool:
            yield pool


@contextmanager
def _open_peer(engine: str, workers: int, start_method: str) -> Iterator[Any]:
    if engine == LOKY:
        import loky

        context = loky.backend.context.get_context(
            "loky" if start_method == "fork" else start_method
        )
        with loky.ProcessPoolExecutor(workers, context=context) as executor:
            yield executor
    elif engine == PEBBLE:
        import pebble

        pool = pebble.ProcessPool(workers, context=multiprocessing.get_context(start_method))
        try:
            yield pool
        finally:
            pool.close()
            pool.join()
    elif engine == MPIRE:
        import mpire

        with mpire.WorkerPool(workers, start_method=start_method, keep_alive=True) as pool:
            yield pool
            pool.stop_and_join()  # its `with` alone terminates the workers
    elif engine == JOBLIB:
        import joblib

        with joblib.Parallel(n_jobs=workers, return_as="generator") as parallel:
            yield parallel
    else:
        raise ValueError(f"unknown engine {engine!r}; pick one of {', '.join(NAMES)}")


def submit(engine: str, pool: Any, fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """Start ``fn(*args)``; return the call that waits for its result."""
    if engine in (MP, MPIRE):
        return pool.apply_async(fn, args).get
    if engine == PEBBLE:
        return pool.schedule(fn, args).result
    if engine == JOBLIB:
        raise NotImplementedError("joblib has no submit(); it maps only")
    return pool.submit(fn, *args).result


def lazy_map(
    engine: str, pool: Any, fn: Callable[..., Any], items: Iterable[Any], chunksize: int | None
) -> Iterator[Any]:
    """Each engine's ordered map that returns an iterator (``imap`` for multiprocessing)."""
    if engine == MP:
        return pool.imap(fn, items, chunksize or 1)
    if engine in (PPE, LOKY):
        return pool.map(fn, items, chunksize=chunksize or 1)
    if engine == PEBBLE:
        return pool.map(fn, items, chunksize=chunksize or 1).result()
    if engine == MPIRE:
        return pool.imap(fn, items, chunk_size=chunksize)
    if engine == JOBLIB:
        import joblib

        batch = "auto" if chunksize is None else chunksize
        pool.batch_size = batch
        return pool(joblib.delayed(fn)(item) for item in items)
    return pool.map(fn, items, chunksize=chunksize)


def map_list(
    engine: str, pool: Any, fn: Callable[..., Any], items: list[Any], chunksize: int | None
) -> list[Any]:
    """Each engine's map of a list to a list, with its own default chunking for None."""
    if engine == MP:
        return pool.map(fn, items, chunksize)
    if engine == MPIRE:
        return pool.map(fn, items, chunk_size=chunksize)
    return list(lazy_map(engine, pool, fn, items, chunksize))


def warm_up(engine: str, pool: Any, workers: int) -> None:
    """Run a few tiny jobs, one per chunk, so every worker is up before the clock starts.

    Tiny jobs, not sleeps: minipool sizes its chunks from measured job times,
    and a slow warm-up job would make it start the timed run with tiny chunks.
    """
    count = 4 * workers
    if list(lazy_map(engine, pool, tasks.inc, range(count), 1)) != list(range(1, count + 1)):
        raise AssertionError("the warm-up jobs returned wrong results")
