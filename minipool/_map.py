"""``Pool.map``: lazy, bounded, chunked.

The input is pulled in the caller's thread, a chunk at a time, and only while
fewer than ``2 * workers`` chunks are in flight: a consumer that stops reading
stops the pulling, so an endless generator runs in bounded memory.

With ``chunksize=None`` the first chunks hold one job each; every later chunk
is sized to run the backend's ``chunk_seconds``, at the time per job the workers
measured on the chunk that finished last. (A cap on growth per step was
tried: it only added round trips, since a one-job chunk overstates the time
per job and errs towards small chunks anyway.) A sized input
also caps them at a quarter of each worker's share of what is left (but not
below ``TAIL_CHUNK_SHARE`` of that), so that the workers finish together.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as FuturesTimeoutError
from itertools import count, islice
from typing import Any, cast

from ._backends import Backend
from ._checks import check_seconds
from ._map_input import common_length, dumps_fn, is_int, iterate, tasks_for
from ._map_results import MapIterator, released_as_yielded
from ._messages import ADAPTIVE, UNTRACKED
from ._open_maps import OpenMaps
from ._options import name_of
from ._progress import Progress, progress_bar
from ._scheduling import ChunkSizer
from ._tasks import ChunkReceiver, ChunkResult

# How many inputs of an unsized iterable (a generator) may be in flight; the
# chunk being handed to the consumer adds at most MAX_AHEAD / (4 * workers),
# so no more than 9,216 are ever read ahead. Bounds memory; smaller means
# smaller chunks, and 4,096 cost a fifth of the throughput on tiny jobs.
MAX_AHEAD = 8192
# Chunks of one map in flight per worker. With fewer, an ordered map waiting
# on a slow chunk at its head leaves the other workers idle; more only hold
# more results in memory.
CHUNKS_PER_WORKER = 4
# The window refills once this many chunks per worker have left it, not after
# each one: a refill wakes the master thread and hands it the GIL, and with 32
# workers on jobs of 1 ms, a wake per chunk cost the caller more CPU than the
# chunks' own work in it. Below 4 workers, a refill per chunk, as before.
REFILL_SHARE = 0.25


def map_jobs(
    owner: object,
    master: Backend,
    fn: Callable[..., Any],
    iterables: tuple[Iterable[Any], ...],
    *,
    timeout: float | None,
    chunksize: int | None,
    ordered: bool,
    return_exceptions: bool,
    progress: bool,
    task_timeout: float | None,
    positions: bool = False,
    open_maps: OpenMaps | None = None,
) -> Iterator[Any]:
    """``Pool.map``; with ``positions``, each outcome comes as ``(input position, outcome)``;
    ``open_maps``, if given, sees that it loses no work at shutdown (see ``_open_maps``)."""
    if not callable(fn):
        raise TypeError(f"map() needs a callable as fn, got {fn!r}")
    if not iterables:
        raise TypeError("map() needs at least one iterable after fn")
    if chunksize is not None and (not is_int(chunksize) or chunksize < 1):
        raise ValueError(
            "chunksize must be a positive integer, or None to size chunks automatically; "
            f"got {chunksize!r}"
        )
    if task_timeout is not None:
        check_seconds("task_timeout", task_timeout)
    iterators = [iterate(position, it) for position, it in enumerate(iterables, 2)]
    star = len(iterators) > 1
    inputs: Iterator[Any] | list[Any] = zip(*iterators, strict=False) if star else iterators[0]
    if not star and type(iterables[0]) is list:
        inputs = iterables[0]
    total = common_length(iterables)
    run = MapRun(
        master,
        fn,
        inputs,
        star,
        total,
        chunksize,
        timeout,
        ordered,
        return_exceptions,
        task_timeout=master.task_timeout if task_timeout is None else task_timeout,
        owner=owner,
        positions=positions,
        open_maps=open_maps,
    )
    run.start(progress)
    return run.results()


class MapRun:
    """The state of one ``map`` call, driven by the consumer's ``next()``."""

    def __init__(
        self,
        master: Backend,
        fn: Callable[..., Any],
        inputs: Iterator[Any] | list[Any],
        star: bool,
        total: int | None,
        chunksize: int | None,
        timeout: float | None,
        ordered: bool,
        return_exceptions: bool,
        *,
        task_timeout: float | None,
        owner: object,
        positions: bool,
        open_maps: OpenMaps | None,
    ) -> None:
        self._master = master
        # `Pool(...).map(...)` drops the pool at once; the iterator must keep it
        # alive, or its finalizer would shut it down under the consumer.
        self._owner = owner
        self._task_timeout = task_timeout
        self._fn = dumps_fn(fn)
        self._inputs = iter(inputs)
        # A list is taken a slice at a time: one copy of a chunk's item
        # pointers instead of an append per item.
        self._list = inputs if type(inputs) is list else None
        self._star = star
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._return_exceptions = return_exceptions
        workers = master.workers
        self._max_chunks = CHUNKS_PER_WORKER * workers
        self._refill_at = self._max_chunks - max(1, int(REFILL_SHARE * workers))
        cap = master.max_tasks_per_worker or (1 << 20)
        if total is None:
            cap = min(cap, max(1, MAX_AHEAD // self._max_chunks))
        self._sizer = ChunkSizer(
            chunksize, workers, total, cap, master.chunk_seconds, master.longest_chunk_seconds
        )
        self.total = total
        self._window: deque[ChunkReceiver] = deque()
        # The chunks with outcomes to take, in the order they came in, for
        # ordered=False only: an ordered map must not keep every finished chunk
        # alive here.
        self._news: queue.SimpleQueue[ChunkReceiver] | None = (
            None if ordered else queue.SimpleQueue()
        )
        # Set whenever outcomes of an ordered map come in (see _wait_for_head).
        self._progress = threading.Event()
        self._exhausted = False
        # Raised once every result before it is out: the input's own error,
        # or the pool stopping under this map.
        self._end_error: BaseException | None = None
        self._bar: Progress | None = None
        self._positions = positions
        self._open_maps = open_maps
        # fill() runs in the reader's thread, and in shutdown's (pull_all).
        self._filling = threading.Lock()
        self._unbounded = False
        self.fn_name = name_of(fn)
        self.read = False  # whether anything asked it for a result yet
        self.dropped_input = False  # stop_pulling() left input unread
        self.pulled = 0  # inputs taken so far: the position of the next
        self._handed_out = 0  # results in the chunks given to the consumer so far
        self._jobs_done = 0  # in the chunks finished so far
        self._jobs_shown = 0  # on the progress bar

    def start(self, progress: bool) -> None:
        if progress:
            self._bar = progress_bar(self.total)
        self.fill()

    def fill(self) -> None:
        """Pull and submit chunks until the window is full or the input ends."""
        with self._filling:
            self._fill()

    def pull_all(self) -> None:
        """Submit the whole rest of the input now (the pool is shutting down, and the
        reader may read after that): memory is no longer bounded by the window."""
        with self._filling:
            self._unbounded = True
            try:
                self._fill()
            except Exception as refusal:  # stopped, broken (init failed): its reader is told
                self._exhausted = True
                self._end_error = _stopped_map() if self._master.stop_requested else refusal

    def _fill(self) -> None:
        # Until a chunk has been timed, one one-job chunk per worker: more of
        # them would only delay the well-sized chunks behind them.
        limit = self._max_chunks if self._sizer.measured else self._master.workers
        if not self._unbounded and self._sizer.measured and len(self._window) > self._refill_at:
            return  # see REFILL_SHARE
        handed_over = False
        while not self._exhausted and (self._unbounded or len(self._window) < limit):
            items = self._pull(self._sizer.next_size(self._master.crash_safe_jobs()))
            if items:
                self._submit(items)
                if not handed_over:
                    # Hand the GIL to the master thread so that it dispatches
                    # this chunk now; otherwise it waits until this thread
                    # blocks, and the workers idle while we pickle the next
                    # chunks. Once per refill: the rest wait that long at most.
                    time.sleep(0)
                    handed_over = True

    def _pull(self, size: int) -> list[Any]:
        """Up to ``size`` inputs; if the input raises, what came before it still runs."""
        if self._list is not None:
            taken = self._list[self.pulled : self.pulled + size]
            self._exhausted = len(taken) < size
            return taken
        items: list[Any] = []
        try:
            items.extend(islice(self._inputs, size))  # keeps what it got before a raise
        except Exception as error:  # the caller's iterable failed: raise it in its place
            self._end_error = error
        if len(items) < size:
            self._exhausted = True
        return items

    def _submit(self, items: list[Any]) -> None:
        receiver = ChunkReceiver(len(items), self.pulled, self._outcomes_in, self._chunk_done)
        self.pulled += len(items)
        first = self._master.reserve_job_ids(len(items))
        tracking = UNTRACKED if self._sizer.jobs_are_tiny else ADAPTIVE
        tasks = tasks_for(
            first,
            self._fn,
            items,
            self._star,
            receiver,
            tracking,
            self._task_timeout,
            self._master.segments,
        )
        try:
            self._master.enqueue(tasks)
        except RuntimeError as refusal:
            if not self._window:
                raise  # map() itself was called on a closed pool
            # Stopped or shut down under a running map: the results already
            # accepted still come out, then this.
            self._exhausted = True
            self._end_error = (
                _stopped_map()
                if self._master.stop_requested
                else _shut_map(refusal, over_an_iterator=self.total is None)
            )
            return
        self._window.append(receiver)

    def _chunk_done(self, receiver: ChunkReceiver, result: ChunkResult) -> None:
        """Each chunk's one done-callback (in the backend's thread): keep it short."""
        self._sizer.observe(receiver.size, result)
        self._jobs_done += receiver.size
        self._outcomes_in(receiver)

    def _outcomes_in(self, receiver: ChunkReceiver) -> None:
        """Outcomes of ``receiver`` came in (in the backend's thread): wake the consumer."""
        if self._news is not None:
            self._news.put(receiver)
        else:
            self._progress.set()

    def _show_progress(self, failed: int = 0) -> None:
        """Advance the progress bar to the jobs done so far, ``failed`` more of them with
        an error (in the consumer's thread)."""
        if self._bar is not None:
            jobs_done = self._jobs_done
            self._bar.update(jobs_done - self._jobs_shown, failed)
            self._jobs_shown = jobs_done

    def results(self) -> MapIterator:
        chunks = self._chunks()
        iterator = cast(MapIterator, MapIterator.from_iterable(chunks))
        iterator.chunks = chunks
        iterator.results_left = self._results_left
        weakref.finalize(iterator, self._dropped)
        if self._open_maps is not None:
            self._open_maps.track(self)
        return iterator

    def _results_left(self) -> int:
        if self.total is None:
            return 0  # unknown
        return max(0, self.total - self._handed_out)

    def _chunks(self) -> Generator[Iterable[Any], None, None]:
        with contextlib.closing(self.takes()) as takes:
            for position, values, errors in takes:
                yield self._outcomes(position, values, errors)

    def takes(self) -> Generator[tuple[int, list[Any], dict[int, BaseException]], None, None]:
        """Each run of outcomes as it comes in (position, values, errors by offset), then
        the map's end error: the loop that drives a map, for its reader or, unread, for
        the thread that runs it on (see ``_open_maps``)."""
        self.read = True
        try:
            while self._window:
                receiver = self._next_with_outcomes()
                position = receiver.position + receiver.taken
                values, errors = receiver.take()
                if receiver.complete:
                    self._window.remove(receiver)
                self._show_progress(len(errors))
                self.fill()
                self._handed_out += len(values)
                yield position, values, errors
            if self._end_error is not None:
                raise self._end_error
        finally:
            self._close()

    def stop_pulling(self) -> None:
        """Take no more of the input (from any thread): the chunks in flight still finish."""
        self.dropped_input = not self._exhausted
        self._exhausted = True

    def _dropped(self) -> None:
        """Its iterator is gone: if nobody read it, it runs on (see ``_open_maps``), unless
        this is a process forked from the pool's."""
        if not self.read and self._open_maps is not None and not self._master.disowned:
            self._open_maps.adopt(self)

    def _next_with_outcomes(self) -> ChunkReceiver:
        """A chunk with outcomes not taken yet: the oldest chunk, for an ordered map, or any
        one, in the order they came in, for ``ordered=False``."""
        if self._news is None:
            self._wait_for_head()
            return self._window[0]
        while True:
            try:
                receiver = self._news.get(timeout=self._time_left())
            except queue.Empty:
                raise FuturesTimeoutError() from None
            if receiver.has_news:
                return receiver

    def _wait_for_head(self) -> None:
        """Wait for outcomes of the oldest chunk; meanwhile, refill as others finish.

        Otherwise one slow job at the head of an ordered map would leave every
        other worker idle once its own chunks were done. The window still caps
        how many finished chunks wait behind the head.
        """
        head = self._window[0]
        while not head.has_news:
            if not self._progress.wait(self._time_left()):
                raise FuturesTimeoutError()
            self._progress.clear()  # then has_news is checked again: no wakeup is lost
            self._show_progress()
            self.fill()

    def _outcomes(
        self, position: int, values: list[Any], errors: dict[int, BaseException]
    ) -> Iterable[Any]:
        outcomes = self._unpack(values, errors) if errors else released_as_yielded(values)
        return zip(count(position), outcomes) if self._positions else outcomes

    def _unpack(self, values: list[Any], errors: dict[int, BaseException]) -> Iterator[Any]:
        # Never bound to a name: this frame, suspended, would keep the last one alive.
        next_value = released_as_yielded(values).__next__
        for position in range(len(values)):
            error = errors.get(position)
            if error is None:
                yield next_value()
                continue
            next_value()
            if self._return_exceptions:
                yield error
            else:
                raise error

    def _time_left(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def _close(self) -> None:
        """The consumer is done (or gave up): cancel what has not started, pull no more."""
        self._exhausted = True
        for receiver in self._window:
            receiver.abandon()
        self._window.clear()
        if self._bar is not None:
            self._show_progress()
            self._bar.close()


def _shut_map(refusal: RuntimeError, over_an_iterator: bool) -> RuntimeError:
    why, fix = (
        ("its input is an iterator, which may never end", ", or pass a list")
        if over_an_iterator
        else ("shutdown(wait=False) does not wait for it", "")
    )
    error = RuntimeError(
        f"the pool was shut down while this map was still reading its input ({why}): the "
        f"items it had read ran, the rest did not. Read a map's results before the pool "
        f"shuts down{fix}."
    )
    error.__cause__ = refusal
    return error


def _stopped_map() -> CancelledError:
    return CancelledError("the pool was stopped; the rest of this map's input was not run")
