"""The caller side of a job: the task record the master dispatches, and where its outcome goes.

A ``Task`` is one chunk (see ``_messages``) together with everything needed to
dispatch it again: if its worker dies, the jobs in it that did not get an
outcome go back to the queue, so the task keeps its arguments as well as their
pickled form. A *receiver* turns outcomes into what the caller waits on: the
``Future`` of one ``submit``, or the result of one ``map`` chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from ._messages import CHUNK, Chunk, frame_header
from ._pickling import PROTOCOL, dumps


class Receiver(Protocol):
    def start(self) -> bool:
        """Called before any of its jobs is dispatched; False if the caller cancelled."""

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

    def cancel(self, reason: str) -> None:
        """The pool stopped before these jobs ran."""


class _FutureReceiver:
    """A receiver whose outcome ends in one ``Future``."""

    __slots__ = ("_running", "future")

    def __init__(self, future: Future[Any]) -> None:
        self.future = future
        self._running: bool | None = None

    def start(self) -> bool:
        if self._running is None:
            self._running = self.future.set_running_or_notify_cancel()
        return self._running

    def cancel(self, reason: str) -> None:
        if not self.future.done() and not self.future.cancel():
            # Already dispatched, so cancel() refuses; the jobs never ran, and
            # the caller still learns so.
            self.future.set_exception(CancelledError(reason))


class JobReceiver(_FutureReceiver):
    """The ``Future`` returned by ``submit``."""

    __slots__ = ()

    def deliver(
        self,
        offset: int,
        values: list[Any],
        errors: dict[int, BaseException],
        seconds: float,
        nbytes: int = 0,
    ) -> None:
        if errors:
            self.future.set_exception(errors[0])
        else:
            self.future.set_result(values[0])


class ChunkResult(NamedTuple):
    """The outcome of one ``map`` chunk: a value per job, errors by position, run time."""

    values: list[Any]
    errors: dict[int, BaseException]
    seconds: float
    nbytes: int  # of the pickled outcomes it came in


class ChunkReceiver(_FutureReceiver):
    """Gathers the outcomes of one ``map`` chunk, which may come back in parts."""

    __slots__ = ("_errors", "_nbytes", "_remaining", "_seconds", "_values", "position", "size")
    future: Future[ChunkResult]

    def __init__(self, size: int, position: int) -> None:
        super().__init__(Future())
        self.size = size
        self.position = position  # of its first job in the map's input
        self._values: list[Any] = [None] * size
        self._errors: dict[int, BaseException] = {}
        self._remaining = size
        self._seconds = 0.0
        self._nbytes = 0

    def deliver(
        self,
        offset: int,
        values: list[Any],
        errors: dict[int, BaseException],
        seconds: float,
        nbytes: int = 0,
    ) -> None:
        if self.future.done():
            # Cancelled by stop() while another part of it (split off after a
            # crash) was still running elsewhere: that part's result is moot.
            return
        self._seconds += seconds
        self._nbytes += nbytes
        if offset == 0 and len(values) == self.size:
            self._values = values
        else:
            self._values[offset : offset + len(values)] = values
        for position, error in errors.items():
            self._errors[offset + position] = error
        self._remaining -= len(values)
        if self._remaining == 0:
            result = ChunkResult(self._values, self._errors, self._seconds, self._nbytes)
            self.future.set_result(result)


@dataclass(slots=True, eq=False)
class Task:
    """One chunk of jobs as the master holds it until every job has an outcome."""

    first_job_id: int
    fn: bytes
    items: list[Any]
    star: bool
    kwargs: dict[str, Any] | None
    receiver: Receiver
    offset: int = 0  # position of this task's first job in its receiver
    tracked: bool = True  # see _messages.Chunk
    attempts: int = 0  # runs of these jobs that failed already (see Pool's retries)
    timeout: float | None = None  # task_timeout, seconds per job
    payload: bytes = field(default=b"", repr=False)
    header: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if self.timeout is not None:
            self.tracked = True  # a timeout needs each job's start
        if not self.payload:
            chunk = Chunk(
                self.first_job_id,
                self.fn,
                self.items,
                self.star,
                self.kwargs,
                self.tracked,
                self.timeout is not None,
            )
            self.payload = dumps(chunk, protocol=PROTOCOL)
        self.header = frame_header(CHUNK, len(self.payload))

    @property
    def size(self) -> int:
        return len(self.items)

    def pieces(self, size: int) -> list[Task]:
        """This task cut into tasks of at most ``size`` jobs (itself if it fits)."""
        if self.size <= size:
            return [self] if self.size else []
        return [
            self.part(start, min(start + size, self.size)) for start in range(0, self.size, size)
        ]

    def part(
        self, start: int, stop: int, *, tracked: bool | None = None, attempts: int | None = None
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
            self.tracked if tracked is None else tracked,
            self.attempts if attempts is None else attempts,
            self.timeout,
        )


def locate(tasks: Sequence[Task], job_id: int) -> tuple[int, int]:
    """Which task, and which job in it, ``job_id`` is; the first job if none holds it."""
    for index, task in enumerate(tasks):
        if task.first_job_id <= job_id < task.first_job_id + task.size:
            return index, job_id - task.first_job_id
    return 0, 0
