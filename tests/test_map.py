"""``Pool.map``: same results as the builtin, lazy and bounded, ordered or not, with errors."""

from __future__ import annotations

import itertools
import operator
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as FuturesTimeoutError
from functools import partial
from pathlib import Path

import jobs
import pytest
from helpers import wait_for

import minipool

MakePool = Callable[..., minipool.Pool]


@pytest.mark.parametrize("size", [0, 1, 7, 10_000])
def test_map_matches_builtin_map(make_pool: MakePool, start_method: str, size: int) -> None:
    """map gives the builtin map's results, in order, for empty, tiny and large inputs."""
    pool = make_pool(start_method=start_method)
    assert list(pool.map(jobs.square, range(size))) == list(map(jobs.square, range(size)))


def test_map_accepts_a_generator(make_pool: MakePool) -> None:
    """An input without a length (a generator) is mapped completely."""
    pool = make_pool()
    assert list(pool.map(jobs.square, (x for x in range(500)))) == [x * x for x in range(500)]


def test_map_over_several_iterables_stops_at_the_shortest(make_pool: MakePool) -> None:
    """Several iterables are zipped into positional arguments; the shortest one wins."""
    pool = make_pool()
    got = list(pool.map(jobs.add3, range(100), range(0, 300, 3), iter(range(50, 60))))
    assert got == list(map(jobs.add3, range(100), range(0, 300, 3), range(50, 60)))
    assert len(got) == 10
    assert list(pool.map(jobs.add, [], range(5))) == []


@pytest.mark.parametrize("chunksize", [1, 3, 64, 100_000])
def test_explicit_chunksize(make_pool: MakePool, chunksize: int) -> None:
    """Any explicit chunksize gives the same results, including one larger than the input."""
    pool = make_pool()
    assert list(pool.map(jobs.square, range(1000), chunksize=chunksize)) == [
        x * x for x in range(1000)
    ]


def test_unordered_map_yields_every_result_once(make_pool: MakePool) -> None:
    """ordered=False yields the same multiset of results as the ordered map."""
    pool = make_pool()
    items = [x % 37 for x in range(2000)]
    got = list(pool.map(jobs.square, items, ordered=False))
    assert Counter(got) == Counter(jobs.square(x) for x in items)


def test_unordered_map_yields_in_completion_order(make_pool: MakePool, tmp_path: Path) -> None:
    """ordered=False yields a finished job before an earlier one that is still running."""
    pool = make_pool()
    started, release = tmp_path / "started", tmp_path / "release"
    slow = (str(started), str(release), "slow")
    fast = (str(tmp_path / "fast-started"), str(tmp_path / "fast-release"), "fast")
    (tmp_path / "fast-release").touch()
    results = pool.map(
        jobs.block_until_released, *zip(slow, fast, strict=True), ordered=False, chunksize=1
    )
    assert next(results) == "fast"
    release.touch()
    assert list(results) == ["slow"]


def test_return_exceptions_yields_errors_in_place(make_pool: MakePool) -> None:
    """return_exceptions=True yields each failing job's exception at its position."""
    pool = make_pool()
    got = list(pool.map(jobs.fail_on_odd, range(20), return_exceptions=True))
    for x, value in enumerate(got):
        if x % 2:
            assert isinstance(value, ValueError)
            assert str(value) == f"odd: {x}"
            assert isinstance(value.__cause__, minipool.RemoteTraceback)
        else:
            assert value == x
    assert len(got) == 20


def test_first_failing_item_raises_its_own_exception(make_pool: MakePool) -> None:
    """Without return_exceptions the first failing item raises, after the results before it."""
    pool = make_pool()
    results = pool.map(jobs.fail_on_odd, [0, 2, 4, 5, 6, 7])
    assert [next(results) for _ in range(3)] == [0, 2, 4]
    with pytest.raises(ValueError, match="odd: 5"):
        next(results)
    assert pool.submit(jobs.square, 3).result(timeout=30) == 9


def test_unpicklable_item_fails_alone(make_pool: MakePool) -> None:
    """An item that cannot be pickled fails with TypeError at its position; the others run."""
    pool = make_pool()
    items: list[object] = list(range(10))
    items[4] = threading.Lock()
    got = list(pool.map(jobs.echo, items, return_exceptions=True))
    assert isinstance(got[4], TypeError)
    assert "pickle" in str(got[4])
    assert got[:4] + got[5:] == [((x,), {}) for x in items[:4] + items[5:]]


def test_map_over_a_list_takes_slices_and_hints_its_length(make_pool: MakePool) -> None:
    """A list comes back whole and in order; its length hint lets ``list()`` size its list once."""
    pool = make_pool()
    items = list(range(25_000))
    results = pool.map(jobs.square, items)
    assert operator.length_hint(results) == len(items)
    assert list(results) == [x * x for x in items]
    unsized = pool.map(jobs.square, iter(items[:10]))
    assert operator.length_hint(unsized) == 0  # a generator's length is unknown
    assert list(unsized) == [x * x for x in range(10)]


def test_map_reads_an_endless_generator_lazily(make_pool: MakePool) -> None:
    """An endless input is pulled only a bounded distance ahead; closing the map is prompt."""
    pool = make_pool()
    pulled = 0

    def endless() -> Iterator[int]:
        nonlocal pulled
        for x in itertools.count():
            pulled += 1
            yield x

    results = pool.map(jobs.square, endless())
    for consumed, value in enumerate(results, 1):
        assert value == (consumed - 1) ** 2
        if consumed == 20_000:
            break
    assert 0 <= pulled - 20_000 <= 10_000
    began = time.monotonic()
    results.close()
    assert time.monotonic() - began < 5
    assert pulled - 20_000 <= 10_000
    assert pool.submit(jobs.square, 7).result(timeout=30) == 49


@pytest.mark.parametrize("source", ["list", "generator"])
def test_a_map_on_many_workers_refills_in_batches_and_loses_nothing(
    make_pool: MakePool, source: str
) -> None:
    """With 8 workers a map refills its window a few chunks at a time (REFILL_SHARE), not
    after every chunk: every result still comes, in order, from a list and a generator."""
    pool = make_pool(8)
    count = 20_000
    items = list(range(count)) if source == "list" else (x for x in range(count))
    assert list(pool.map(jobs.square, items)) == [x * x for x in range(count)]


def test_abandoned_map_leaves_the_pool_usable(make_pool: MakePool) -> None:
    """Breaking out of a map early cancels its queued chunks; the pool stays usable."""
    pool = make_pool()
    results = pool.map(jobs.square, range(100_000))
    assert [next(results) for _ in range(10)] == [x * x for x in range(10)]
    results.close()
    assert list(pool.map(jobs.square, range(5))) == [0, 1, 4, 9, 16]


def test_map_timeout_counts_from_the_call(make_pool: MakePool, tmp_path: Path) -> None:
    """A map whose results are not all ready by the timeout raises concurrent's TimeoutError."""
    pool = make_pool(1)
    started, release = tmp_path / "started", tmp_path / "release"
    began = time.monotonic()
    results = pool.map(jobs.block_until_released, [str(started)], [str(release)], timeout=0.3)
    with pytest.raises(FuturesTimeoutError):
        next(results)
    assert 0.25 < time.monotonic() - began < 10
    release.touch()
    assert pool.submit(jobs.square, 2).result(timeout=30) == 4


def test_progress_on_stderr(make_pool: MakePool, capfd: pytest.CaptureFixture[str]) -> None:
    """progress=True reports on stderr up to the total (a status line here, where stderr is
    not a terminal: see test_progress.py); results are unchanged."""
    pool = make_pool()
    assert list(pool.map(jobs.square, range(50), progress=True)) == [x * x for x in range(50)]
    err = capfd.readouterr().err
    assert err.startswith("minipool: 50/50 jobs done, 0 failed"), err


def test_map_input_error_is_raised_in_order(make_pool: MakePool) -> None:
    """An exception raised by the input iterable reaches the consumer after earlier results.

    The pool has run a job first, so that map sizes its first chunk from
    measured job times (bigger than the 3 items the input yields before it fails).
    """
    pool = make_pool()
    assert pool.submit(jobs.square, 2).result(timeout=30) == 4

    def source() -> Iterator[int]:
        yield from range(3)
        raise KeyError("input broke")

    results = pool.map(jobs.square, source())
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    with pytest.raises(KeyError, match="input broke"):
        next(results)


def test_stop_under_a_map_with_return_exceptions(make_pool: MakePool, tmp_path: Path) -> None:
    """After stop(), the finished results still come out, each job never run as CancelledError."""
    pool = make_pool(1)
    started, release = tmp_path / "started", tmp_path / "release"
    job = partial(jobs.block_on_zero, str(started), str(release))
    results = pool.map(job, range(100), chunksize=1, return_exceptions=True)
    assert wait_for(started.exists, timeout=30)
    pool.stop()
    release.touch()
    got: list[object] = []
    with pytest.raises(CancelledError, match="rest of this map's input was not run"):
        got.extend(results)
    assert got[0] == 0
    assert len(got) > 1
    assert all(isinstance(outcome, CancelledError) for outcome in got[1:])


def test_a_slow_head_does_not_idle_the_other_workers(make_pool: MakePool, tmp_path: Path) -> None:
    """An ordered map whose first job hangs keeps the other worker busy with the jobs behind it.

    (As many as the map's window of chunks holds: the finished ones wait there
    for the head.)
    """
    pool = make_pool(2)
    started, release, markers = tmp_path / "started", tmp_path / "release", tmp_path / "done"
    markers.mkdir()
    job = partial(jobs.block_on_zero_or_mark, str(started), str(release), str(markers))
    results = pool.map(job, range(40))
    first = threading.Thread(target=next, args=(results,), daemon=True)  # waits on job 0
    first.start()
    try:
        assert wait_for(lambda: len(list(markers.iterdir())) >= 10, timeout=15)
    finally:
        release.touch()
        first.join(timeout=30)
    assert list(results) == list(range(1, 40))


@pytest.mark.parametrize("ordered", [True, False])
def test_map_lets_go_of_each_result_as_it_yields_it(make_pool: MakePool, ordered: bool) -> None:
    """A result the map has yielded is the consumer's alone (bpo-14406): holding none,
    the consumer holds no memory, in chunks without errors and with one (``Box`` for
    7 is a ValueError, yielded in its place)."""
    pool = make_pool()
    yielded: weakref.WeakSet[jobs.Box] = weakref.WeakSet()
    most_alive = errors = 0
    for result in pool.map(jobs.box, range(20_000), ordered=ordered, return_exceptions=True):
        if isinstance(result, ValueError):
            errors += 1
        else:
            yielded.add(result)
        del result
        most_alive = max(most_alive, len(yielded))
    assert errors == 1
    assert most_alive == 0


# ---- a map nobody reads -------------------------------------------------------------


@pytest.mark.parametrize("how", ["shutdown", "with"])
def test_a_map_nobody_reads_runs_every_item_of_a_list(
    make_pool: MakePool, tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """``pool.map(fn, items)`` as a statement, its results never read (a side-effect map,
    common with the stdlib's pools): every item has run by the time ``shutdown()`` or
    the ``with`` block returns, and nothing is logged."""
    names = [str(n) for n in range(300)]
    write = partial(jobs.write_marker, str(tmp_path))
    pool = make_pool()
    if how == "with":
        with pool:
            pool.map(write, names)
    else:
        pool.map(write, names)
        pool.shutdown()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(names)
    assert not [record for record in caplog.records if record.name == "minipool"]


def test_the_errors_of_a_map_nobody_reads_are_logged(
    make_pool: MakePool, caplog: pytest.LogCaptureFixture
) -> None:
    """Nobody else will see them: each failed job of an unread map is a warning."""
    pool = make_pool()
    pool.map(jobs.fail_on_odd, range(10))
    pool.shutdown()
    failures = sorted(r.getMessage() for r in caplog.records if r.name == "minipool")
    assert failures == sorted(
        f"item {n} of an unread map of fail_on_odd failed: ValueError: odd: {n}"
        for n in range(1, 10, 2)
    )


def test_an_unread_map_of_an_endless_input_is_stopped_by_shutdown_with_a_warning(
    make_pool: MakePool, caplog: pytest.LogCaptureFixture
) -> None:
    """Over an iterator, which may never end, an unread map runs on until shutdown, which
    stops it instead of waiting forever, and warns that the rest of its input was
    dropped; a map that was read and then left (a ``break``) stops quietly."""
    pool = make_pool()
    for _ in pool.map(jobs.square, itertools.count()):
        break
    pool.map(jobs.square, itertools.count())
    assert wait_for(lambda: pool.stats.completed > 50, timeout=30)  # it runs on, unread
    pool.shutdown()
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "minipool"]
    assert "was never read, over an iterator" in warning
    assert "dropped the rest of its input after" in warning


def test_a_map_held_past_shutdown_gives_its_reader_every_result(make_pool: MakePool) -> None:
    """``results = pool.map(...)`` in the ``with`` block, read after it, as the stdlib
    allows: a list's results all come, read in part before or not; an iterator's
    (which may never end) come for what it had read, then an error that says why the
    rest did not run."""
    pool = make_pool()
    with pool:
        unread = pool.map(jobs.square, range(300))
        partly_read = pool.map(jobs.square, range(300))
        first = [next(partly_read) for _ in range(5)]
        over_an_iterator = pool.map(jobs.square, iter(range(100_000)))
    squares = [x * x for x in range(300)]
    assert list(unread) == squares
    assert first + list(partly_read) == squares
    got: list[int] = []
    with pytest.raises(RuntimeError, match="shut down while this map was still reading"):
        got.extend(over_an_iterator)
    assert got == [x * x for x in range(len(got))]


def test_a_map_held_past_stop_and_shutdown_ends_cancelled(make_pool: MakePool) -> None:
    """``stop()`` then ``shutdown()``: a held map over a range is not pulled to its end
    (stop cancels what has not run); its reader gets CancelledError, and shutdown
    itself raises nothing."""
    pool = make_pool()
    results = pool.map(jobs.square, range(100_000))
    pool.stop()
    pool.shutdown()
    with pytest.raises(CancelledError):
        list(results)
