"""Fixtures: the start methods, and pools that are checked for leaks when a test ends.

Every pool a test makes through ``make_pool`` is shut down when the test ends,
pass or fail, and the test then fails if any process it started is still
running or any file descriptor it opened is still open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import (
    Snapshot,
    check_no_leaks,
    descendants,
    kill_processes,
    leaked_processes,
    shut_down,
)

import minipool

START_METHODS = ["fork", "spawn", "forkserver"]
# A finished test's pools get this long to shut down before their processes
# are killed; jobs that wait on the test give up well before (jobs.RELEASE_TIMEOUT).
SHUTDOWN_TIMEOUT = 30.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the Dask tests last.

    Importing ``distributed`` installs tblib's pickling for every exception
    class in this process (``copyreg``), and fork workers inherit it: an
    exception that plain pickle cannot rebuild (CPython gh-79492) then comes
    back with its own type, and the tests of what minipool does with such an
    exception would test tblib instead.
    """
    items.sort(key=lambda item: item.path.name == "test_dask.py")


@pytest.fixture(scope="session")
def long_lived_processes() -> frozenset[int]:
    """The processes multiprocessing keeps for the whole session, started up front.

    The forkserver process and the resource tracker (started by spawn and
    forkserver) live until the interpreter exits, with a few fds of ours; they
    are started here, before any test measures, and are not leaks.
    """
    for method in ("forkserver", "spawn"):
        with minipool.Pool(1, start_method=method) as pool:
            pool.submit(abs, -1).result(timeout=30)
    return frozenset(descendants())


@pytest.fixture(params=START_METHODS)
def start_method(request: pytest.FixtureRequest) -> str:
    """Each of fork, spawn and forkserver in turn."""
    return str(request.param)


@pytest.fixture
def leak_check(long_lived_processes: frozenset[int]) -> Iterator[Snapshot]:
    """Fail the test if it leaves a process or a file descriptor behind."""
    snapshot = Snapshot.take(long_lived_processes)
    yield snapshot
    check_no_leaks(snapshot)


@pytest.fixture
def make_pool(leak_check: Snapshot) -> Iterator[Callable[..., minipool.Pool]]:
    """``make_pool(workers=2, **kwargs)``: a Pool (fork unless told) shut down after the test."""
    pools: list[minipool.Pool] = []

    def make(workers: int | None = 2, **kwargs: Any) -> minipool.Pool:
        kwargs.setdefault("start_method", "fork")
        pool = minipool.Pool(workers, **kwargs)
        pools.append(pool)
        return pool

    yield make
    stuck = [pool for pool in pools if not shut_down(pool, SHUTDOWN_TIMEOUT)]
    if stuck:
        kill_processes(leaked_processes(leak_check))
        pytest.fail(f"{len(stuck)} pool(s) did not shut down within {SHUTDOWN_TIMEOUT} s")
