"""The caller side of a job: the task record a backend dispatches, and where its outcome goes.

A ``Task`` is one chunk (see ``_messages``) together with everything needed to
dispatch it again: if its worker dies, the jobs in it that did not get an
outcome go back to the queue, so the task keeps its arguments as well as their
pickled form. A *receiver* turns outcomes into what the caller waits on: the
``Future`` of one ``submit``, or the result of one ``map`` chunk.

A job is *pending* until a worker starts it, wherever it waits: in the pool's
queue, or sent to a worker (its task then has a ``Placement``). Only a
pending job can be cancelled, and a cancelled job never runs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from concurrent.futures import _base as futures_states
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

from ._messages import TRACKED, Chunk, chunk_header
from ._pickling import dumps_value
from ._segment_maps import segment_of
from ._segments import OwnedSegment, SegmentDir

T = TypeVar("T")
_futures_log = logging.getLogger("concurrent.futures")  # where Future logs failing callbacks


class Placement(Protocol):
    """Where a task waits at a worker, as the backend knows it."""

    def started(self) -> bool:
        """Whether the worker has started the task."""

    def revoke(self) -> bool:
        """Take the task back unless the worker started it; whether it was taken back."""


class Receiver(Protocol):
    """What a backend tells about a task's jobs, from sending them to their outcomes."""

    @property
    def abandoned(self) -> bool:
        """The caller cancelled: drop the task, it needs no outcome."""

    def place(self, placement: Placement | None) -> bool:
        """The task is about to be sent to a worker; False (and it must not be) if the
        caller cancelled it."""

    def unplace(self, placement: Placement | None) -> None:
        """The task was taken back from its worker, or finished there."""

    def deliver(
        self,
        offset: int,
        values: list[Any],
        errors: dict[int, BaseException],
        seconds: float,
        nbytes: int = 0,
    ) -> None:
        """Outcomes for jobs ``offset, offset + 1, ...`` (``errors`` by position).

        ``seconds`` is how long the worker took to run them.
        """

    def cancel(self, offset: int, count: int, reason: str) -> None:
        """Jobs ``offset`` to ``offset + count - 1`` never ran and never will (stop())."""


class JobFuture(Future[T]):
    """The ``Future`` of one job, which knows where the job waits.

    ``running()`` is True from the moment a worker starts the job, even
    before the pool hears of it; ``cancel()`` takes the job back from the
    worker it waits at, and fails only once that worker has started it. The
    pool never marks it running: from pending it goes straight to done.
    """

    _placement: Placement | None = None
    # Set by ``cancel()`` once it has decided, under the lock, that the job is
    # taken back: ``place()`` refuses it from then on. The state says
    # cancelled only later (``Future.cancel`` takes the lock again, and runs
    # callbacks outside it), and a ``place()`` in between must not send it.
    _cancelling = False

    def running(self) -> bool:
        with self._condition:
            if self._state != futures_states.PENDING:
                return self._state == futures_states.RUNNING
            placement = self._placement
            return placement is not None and placement.started()

    def cancel(self) -> bool:
        with self._condition:
            placement = self._placement
            if placement is not None:
                if not placement.revoke():
                    return False
                # Revoked, so no worker will start it: its backend drops it on
                # sight, even before the state below says cancelled.
                self._placement = None
            self._cancelling = True
        if not super().cancel():
            return False
        self._notify_cancelled()
        return True

    def _notify_cancelled(self) -> None:
        """Wake ``wait()`` and ``as_completed()`` now, not when the pool next looks at the job."""
        with self._condition:
            if self._state == futures_states.CANCELLED:
                self.set_running_or_notify_cancel()

    # ---- the backend's side --------------------------------------------------------

    def place(self, placement: Placement | None) -> bool:
        """The job is sent to a worker, to wait at ``placement``; False if it was cancelled.

        Under the lock ``cancel()`` holds: without it, a cancel could find no
        placement yet while this found the job still pending, and the job would
        run although cancelled.
        """
        with self._condition:
            if self._cancelling or self._state != futures_states.PENDING:
                return False
            self._placement = placement
            return True

    def unplace(self) -> None:
        """The job was taken back from its worker: it waits in the pool's queue."""
        self._placement = None  # one store: atomic for the threads that read it


class JobReceiver:
    """The ``Future`` returned by ``submit``."""

    __slots__ = ("future",)

    def __init__(self, future: JobFuture[Any]) -> None:
        self.future = future

    @property
    def abandoned(self) -> bool:
        return self.future.cancelled()

    def place(self, placement: Placement | None) -> bool:
        return self.future.place(placement)

    def unplace(self, placement: Placement | None) -> None:
        self.future.unplace()

    def deliver(
        self,
        offset: int,
        values: list[Any],
        errors: dict[int, BaseException],
        seconds: float,
        nbytes: int = 0,
    ) -> None:
        future = self.future
        with _callbacks_contained(future):
            if errors:
                future.set_exception(errors[0])
            else:
                future.set_result(values[0])
        # Done, it waits nowhere (and no reference cycle stays behind). Not
        # before: a job with no placement is one in the pool's queue, and a
        # cancel() in between would succeed on a job that ran.
        future.unplace()

    def cancel(self, offset: int, count: int, reason: str) -> None:
        future = self.future
        future.unplace()
        with _callbacks_contained(future):
            if not future.cancel() and not future.done():
                # A job whose start the pool did see cannot be cancelled; if one
                # ever comes here, its caller still learns that it will not finish.
                future.set_exception(CancelledError(reason))


@contextlib.contextmanager
def _callbacks_contained(future: Future[Any]) -> Iterator[None]:
    """Resolve ``future`` in the pool's thread, which its done-callbacks must not end.

    ``Future`` logs a callback's ``Exception`` and runs the next; a
    ``BaseException`` (``SystemExit``, ``KeyboardInterrupt``) goes through it.
    Here it is logged the same way, once the future is already resolved.
    """
    try:
        yield
    except BaseException:
        _futures_log.exception("exception calling callback for %r", future)


class ChunkResult(NamedTuple):
    """The outcome of one ``map`` chunk: a value per job, errors by position, run time."""

    values: list[Any]
    errors: dict[int, BaseException]
    seconds: float
    nbytes: int  # of the pickled outcomes it came in


# A ChunkReceiver's states: waiting for outcomes, every one in, or abandoned.
_WAITING, _COMPLETE, _ABANDONED = "waiting", "complete", "abandoned"


class ChunkReceiver:
    """Gathers the outcomes of one ``map`` chunk, which may come back in parts.

    The map's consumer ``take``s the outcomes at the chunk's front as they come
    in (``on_outcomes`` tells it, from the backend's thread), so a result is
    not held back by a slow job later in its chunk; ``on_done`` gets the whole
    chunk's result once every part is in (for chunk sizing), unless ``abandon``
    came first, when the map was dropped. No ``Future``: its condition (Python
    code), lock and callback list, made and run for every chunk, cost the
    caller's process a third of its CPU per chunk (bench_master.py, 32 workers,
    map chunksize=1: 106 us before, 63 us after), for what a lock and a flag do.
    """

    __slots__ = (
        "_errors",
        "_later",
        "_lock",
        "_nbytes",
        "_on_done",
        "_on_outcomes",
        "_placements",
        "_ready",
        "_remaining",
        "_seconds",
        "_state",
        "_values",
        "position",
        "size",
        "taken",
    )

    def __init__(
        self,
        size: int,
        position: int,
        on_outcomes: Callable[[ChunkReceiver], None],
        on_done: Callable[[ChunkReceiver, ChunkResult], None],
    ) -> None:
        self._lock = threading.Lock()  # orders abandon() against the last deliver()
        self._state = _WAITING
        self.size = size
        self.position = position  # of its first job in the map's input
        self._on_outcomes = on_outcomes
        self._on_done = on_done
        self._values: list[Any] = [None] * size
        self._errors: dict[int, BaseException] = {}
        self._remaining = size
        self._ready = 0  # jobs at the front whose outcomes are in
        self._later: dict[int, int] = {}  # parts in beyond the front: offset -> jobs
        self.taken = 0  # jobs at the front whose outcomes the consumer took
        self._seconds = 0.0
        self._nbytes = 0
        # Where its parts wait at workers (one, unless a crash split the chunk).
        self._placements: set[Placement] = set()

    @property
    def abandoned(self) -> bool:
        return self._state is _ABANDONED

    def place(self, placement: Placement | None) -> bool:
        if self._state is _ABANDONED:
            return False
        if placement is not None:
            self._placements.add(placement)
        return True

    def unplace(self, placement: Placement | None) -> None:
        self._placements.discard(placement)

    def abandon(self) -> None:
        """The map is dropped: cancel the chunk, and take back what no worker started."""
        with self._lock:
            if self._state is not _WAITING:
                return  # complete already
            self._state = _ABANDONED
        for placement in list(self._placements):  # one C call: no other thread interleaves
            placement.revoke()

    def deliver(
        self,
        offset: int,
        values: list[Any],
        errors: dict[int, BaseException],
        seconds: float,
        nbytes: int = 0,
    ) -> None:
        if self._state is not _WAITING:
            return  # abandoned: nobody reads it
        self._seconds += seconds
        self._nbytes += nbytes
        if offset == 0 and len(values) == self.size:
            self._values = values
        else:
            self._values[offset : offset + len(values)] = values
        for position, error in errors.items():
            self._errors[offset + position] = error
        self._remaining -= len(values)
        self._later[offset] = len(values)
        while self._ready in self._later:  # last: the values are in place when it moves
            self._ready += self._later.pop(self._ready)
        if self._remaining == 0:
            with self._lock:
                if self._state is not _WAITING:
                    return  # abandoned meanwhile
                self._state = _COMPLETE
            result = ChunkResult(self._values, self._errors, self._seconds, self._nbytes)
            self._on_done(self, result)  # which tells the consumer
        else:
            self._on_outcomes(self)

    def cancel(self, offset: int, count: int, reason: str) -> None:
        errors: dict[int, BaseException] = {n: CancelledError(reason) for n in range(count)}
        self.deliver(offset, [None] * count, errors, 0.0)

    # ---- the map's consumer --------------------------------------------------------

    @property
    def has_news(self) -> bool:
        return self._ready > self.taken

    @property
    def complete(self) -> bool:
        return self.taken == self.size

    def take(self) -> tuple[list[Any], dict[int, BaseException]]:
        """The outcomes that came in at the front since the last take: values, and errors
        by position among them."""
        start, stop = self.taken, self._ready
        self.taken = stop
        if start == 0 and stop == self.size:
            values = self._values
        else:  # a part: the chunk lets go of it (one C call each, as deliver writes others)
            values = self._values[start:stop]
            self._values[start:stop] = [None] * (stop - start)
        if not self._errors:
            return values, {}
        # list(): one C call, so the backend's thread cannot add an error meanwhile.
        errors = {p - start: e for p, e in list(self._errors.items()) if start <= p < stop}
        return values, errors


@dataclass(slots=True, eq=False)
class Task:
    """One chunk of jobs as a backend holds it until every job has an outcome.

    Its frame (the pickled chunk and its header) is made on first use: the
    caller makes it at once, so that an argument that does not pickle fails
    in ``submit``; the parts a backend cuts from a task (see ``part``) make
    theirs only if they are sent again.
    """

    first_job_id: int
    fn: bytes
    items: list[Any]
    star: bool
    kwargs: dict[str, Any] | None
    receiver: Receiver
    offset: int = 0  # position of this task's first job in its receiver
    tracking: int = TRACKED  # see _messages.Chunk
    attempts: int = 0  # runs of these jobs that failed already (see Pool's retries)
    timeout: float | None = None  # task_timeout, seconds per job
    segments: SegmentDir | None = None  # where large arguments go (see _segments)
    _frame: tuple[bytes, bytes] | None = None
    _segment: OwnedSegment | None = None  # the one its frame names, if any

    def __post_init__(self) -> None:
        if self.timeout is not None:
            self.tracking = TRACKED  # a timeout needs each job's start

    @property
    def size(self) -> int:
        return len(self.items)

    def frame(self) -> tuple[bytes, bytes]:
        """The ``CHUNK`` frame's header (with its prefix) and the pickled chunk."""
        if self._frame is None:
            # Arguments travel as the function does: by value when only cloudpickle can.
            chunk = Chunk(self.fn, self.items, self.star, self.kwargs, self.tracking, self.attempts)
            payload = dumps_value(tuple(chunk), self.segments)
            segment = segment_of(payload)
            if segment is not None and self.segments is not None:
                self._segment = self.segments.own(*segment)
            header = chunk_header(
                self.first_job_id, self.size, self.timeout is not None, len(payload)
            )
            self._frame = (header, payload)
        return self._frame

    def mark_sent(self) -> None:
        """Its frame goes to a worker now (see ``_segments.SegmentDir.sent``)."""
        if self._segment is not None:
            self._segment.sent()

    def pieces(self, size: int) -> list[Task]:
        """This task cut into tasks of at most ``size`` jobs (itself if it fits)."""
        if self.size <= size:
            return [self] if self.size else []
        return [
            self.part(start, min(start + size, self.size)) for start in range(0, self.size, size)
        ]

    def part(
        self, start: int, stop: int, *, tracking: int | None = None, attempts: int | None = None
    ) -> Task:
        """The jobs ``start:stop`` of this task as a task of their own."""
        return Task(
            self.first_job_id + start,
            self.fn,
            self.items[start:stop],
            self.star,
            self.kwargs,
            self.receiver,
            self.offset + start,
            self.tracking if tracking is None else tracking,
            self.attempts if attempts is None else attempts,
            self.timeout,
            self.segments,
        )
