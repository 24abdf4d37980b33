"""The process pools under comparison, behind one small interface.

The standard library's two and minipool are always there; loky, pebble,
mpire and joblib come from the ``bench`` extra and are measured when
installed (``PEERS``). Every engine gets the same worker count and, where it
allows, the same start method (``START_METHOD_NOTES`` says where not); each is
shut down cleanly: all pending work finished, every worker joined.

``add_baseline(REV)`` (``bench_engine.py --baseline REV``) adds one more:
minipool's own package as it was at git revision REV, copied under another
name (``minipool_base``) into a temporary directory on ``sys.path``, keyed
``minipool@<short rev>``, so that one run measures minipool now and then.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import io
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
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
# The engines' order before each round shuffles it (round_order), so that no
# engine always runs first (cold caches), last, or after the same neighbour.
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

# The repository root: benchmarks/ and the minipool/ package sit side by side in it.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE_PACKAGE = "minipool_base"

T = TypeVar("T")


@dataclass(frozen=True)
class Baseline:
    """minipool at an earlier revision, imported as ``BASELINE_PACKAGE`` from ``copy``."""

    engine: str  # "minipool@<short rev>": the engine key and the rows' label prefix
    revision: str  # as given on the command line
    commit: str  # its short hash
    copy: str  # the temporary directory on sys.path that holds the package
    module: ModuleType


# Set by add_baseline(); None in a run without --baseline.
BASELINE: Baseline | None = None


class BaselineError(Exception):
    """A --baseline revision that cannot be measured; the message says why."""


def everyone() -> tuple[str, ...]:
    """The standard library's pools, minipool, its --baseline if any, every installed peer."""
    return ENGINES + ((BASELINE.engine,) if BASELINE else ()) + PEERS


def is_peer(engine: str) -> bool:
    """Not minipool, at this revision or at the --baseline one: one of the pools compared."""
    return engine.partition("@")[0] != MINIPOOL


def add_baseline(revision: str) -> Baseline:
    """Make minipool's package at git ``revision`` an engine of this run, ``minipool@<rev>``.

    ``git archive REV:./minipool`` unpacks it as ``minipool_base`` into a new
    temporary directory, removed when this process exits, and put first on
    ``sys.path``: spawn and forkserver children are given the parent's path,
    fork children inherit it.
    """
    global BASELINE
    if BASELINE is not None:
        raise BaselineError(f"a baseline is already set: {BASELINE.engine}")
    try:
        full, commit = (
            _git("rev-parse", "--verify", *short, f"{revision}^{{commit}}").decode().strip()
            for short in ((), ("--short",))
        )
    except BaselineError as error:
        raise BaselineError(
            f"no commit {revision!r} here (a tag, a hash, HEAD~1): {error}"
        ) from None
    copy = _unpack(full, commit)
    package = os.path.join(copy, BASELINE_PACKAGE)
    _check_relative_imports(package, commit)
    _own_public_names(package)
    sys.path.insert(0, copy)
    module = importlib.import_module(BASELINE_PACKAGE)
    if not (module.__file__ or "").startswith(package + os.sep):
        raise BaselineError(f"{BASELINE_PACKAGE} was imported from {module.__file__}, not {copy}")
    engine = f"{MINIPOOL}@{commit}"
    NAMES[engine] = f"{NAMES[MINIPOOL]} @ {commit}"
    BASELINE = Baseline(engine, revision, commit, copy, module)
    return BASELINE


def _unpack(full: str, commit: str) -> str:
    """A new temporary directory, removed at exit, holding minipool/ at ``full`` renamed."""
    archive = _git("archive", "--format=tar", f"--prefix={BASELINE_PACKAGE}/", f"{full}:./minipool")
    copy = tempfile.mkdtemp(prefix=f"minipool-{commit}-")
    _remove_at_exit(copy)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        # Our own repository's archive; the "data" filter where this Python has one.
        if hasattr(tarfile, "data_filter"):
            tar.extractall(copy, filter="data")
        else:
            tar.extractall(copy)
    return copy


def _git(*args: str) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=True)
    except FileNotFoundError:
        raise BaselineError("git is not installed") from None
    except subprocess.CalledProcessError as error:
        message = error.stderr.decode(errors="replace").strip()
        raise BaselineError(f"git {args[0]} failed in {ROOT}: {message}") from None
    return done.stdout


def _remove_at_exit(path: str) -> None:
    owner = os.getpid()

    def remove() -> None:
        # A forked child that exits through sys.exit runs its parent's atexit
        # handlers too: only the process that made the copy removes it.
        if os.getpid() == owner:
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)


ABSOLUTE_IMPORT = re.compile(r"^\s*(?:from|import)\s+minipool\b", re.MULTILINE)


def _check_relative_imports(package: str, commit: str) -> None:
    """Refuse a copy that imports ``minipool`` by name: it would run today's code, not its own."""
    for folder, _, files in os.walk(package):
        for name in (file for file in files if file.endswith(".py")):
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as source:
                found = ABSOLUTE_IMPORT.search(source.read())
            if found:
                where = os.path.relpath(path, package)
                raise BaselineError(
                    f"minipool/{where} at {commit} imports minipool by its absolute name "
                    f"({found.group().strip()!r}): renamed to {BASELINE_PACKAGE}, it would "
                    "mix in today's package; pick a revision whose imports are all relative"
                )


def _own_public_names(package: str) -> None:
    """Let the copy's public names report their own module, not ``"minipool"``.

    minipool's ``__init__`` sets ``__module__ = "minipool"`` on its public
    names; in the copy, pickle would then look a ``minipool_base`` class up in
    today's ``minipool`` (and fail: not the same object). The copy names its
    own module instead; nothing else changes.
    """
    path = os.path.join(package, "__init__.py")
    with open(path, encoding="utf-8") as source:
        text = source.read()
    with open(path, "w", encoding="utf-8") as out:
        out.write(re.sub(r"""__module__ = ["']minipool["']""", "__module__ = __name__", text))


def round_order(round_index: int, items: tuple[T, ...]) -> tuple[T, ...]:
    """``items`` in the order of round ``round_index``: shuffled, the same way every run.

    Not a rotation: that keeps each engine behind the same neighbour in every
    round, and an engine that leaves work behind it (freed futures by the ten
    thousand, threads winding down) would slow the same next engine each time.
    Seen: minipool 1.17x-1.25x slower than its own baseline in tiny_submit when
    always run right after ProcessPoolExecutor, 0.98x when alternated alone.
    """
    order = list(items)
    random.Random(round_index).shuffle(order)
    return tuple(order)


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
    elif BASELINE is not None and engine == BASELINE.engine:
        with BASELINE.module.Pool(workers, start_method=start_method) as base:
            yield base
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
