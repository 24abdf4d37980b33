"""What crosses the pipes between the master and a worker.

Vocabulary: a *job* is one ``fn(*args, **kwargs)`` call the caller asked for;
a ``Chunk`` is one or more jobs of the same function with consecutive job ids
(``submit`` makes chunks of one, ``map`` makes bigger ones); a *batch* is the
run of chunk frames the master writes to a worker in one system call; an
``Outcome`` is what comes back for one chunk.

Every message travels as a frame: an 8-byte little-endian payload length, one
kind byte, then the payload (a pickle, or nothing). Frames let the master read
and write without blocking and let either side pass several messages in one
system call.
"""

from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any

HEADER = struct.Struct("<QB")

# Master -> worker.
CHUNK = 1
STOP = 2  # finish what was sent before this frame, tear down, exit
# Worker -> master.
OUTCOME = 11
READY = 12  # init finished; jobs may now fail only on their own account
INIT_FAILED = 13
RECYCLING = 14  # past max_worker_memory: exiting; the chunks not answered never ran
LOGS = 15  # log events (see _log_spill)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Jobs ``first_job_id, first_job_id + 1, ...``: one call of ``fn`` per item.

    With ``star`` each item is a tuple of arguments, ``fn(*item, **kwargs)``;
    without, ``fn(item)``: ``map`` over one iterable sends its items as they
    are, which pickles several times faster than one-element tuples.

    A ``tracked`` chunk has the worker publish the id of each job before it
    starts it, so that a crash is pinned on the job that caused it. Tracking
    costs about 45 ns a job, which doubles the worker's cost of jobs that take
    a few hundred nanoseconds; so chunks of jobs measured below
    ``_scheduling.UNTRACKED_BELOW_SECONDS`` run untracked, as one C-level loop, and
    if their worker dies their jobs run again, tracked (see ``_master``).
    ``fn`` stays pickled (see ``_pickling.dumps_function``) so that the worker
    can cache the function by its bytes instead of unpickling it per job.
    """

    first_job_id: int
    fn: bytes
    items: list[Any]
    star: bool
    kwargs: dict[str, Any] | None
    tracked: bool = True
    timed: bool = False  # has a task_timeout: the worker stamps each job's start

    def __reduce__(self) -> tuple[Any, ...]:
        fields = (
            self.first_job_id,
            self.fn,
            self.items,
            self.star,
            self.kwargs,
            self.tracked,
            self.timed,
        )
        return (Chunk, fields)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A job's exception as it leaves the worker.

    ``exception`` is the pickled exception, or ``None`` when it would not
    round-trip through pickle; the text fields always survive.
    """

    type_name: str
    message: str
    traceback: str
    exception: bytes | None

    def __reduce__(self) -> tuple[Any, ...]:
        return (ErrorInfo, (self.type_name, self.message, self.traceback, self.exception))


@dataclass(frozen=True, slots=True)
class Outcome:
    """The results of one chunk, in job order.

    ``errors`` maps a job's position in the chunk to its error (its slot in
    ``values`` is then ``None``); it is ``None`` when every job succeeded, which
    keeps the common case small. ``values`` is ``None`` when the chunk could not
    be run at all (it did not unpickle): ``errors[0]`` is then every job's error.
    ``seconds`` is the time the jobs ran, used to size later chunks.
    """

    first_job_id: int
    values: list[Any] | None
    errors: dict[int, ErrorInfo] | None
    seconds: float

    def __reduce__(self) -> tuple[Any, ...]:
        return (Outcome, (self.first_job_id, self.values, self.errors, self.seconds))


def frame_header(kind: int, payload_size: int) -> bytes:
    return HEADER.pack(payload_size, kind)


class FrameReader:
    """Reassembles frames from bytes that arrive in arbitrary pieces.

    The pieces of an incomplete frame are kept in a list and joined once the
    frame is whole: joining them at every read would copy a 256 MiB frame,
    arriving a pipe-full at a time, some 256 times over.
    """

    __slots__ = ("_buffered", "_needed", "_pieces")

    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self._buffered = 0  # bytes in _pieces
        self._needed = 0  # bytes _pieces must hold before a frame can complete

    def feed(self, data: bytes) -> list[tuple[int, memoryview]]:
        """Add ``data``; return every ``(kind, payload)`` now complete, in order.

        Payloads are views into the bytes read, not copies: ``pickle.loads``
        takes them as they are.
        """
        if self._pieces:
            self._pieces.append(data)
            self._buffered += len(data)
            if self._buffered < self._needed:
                return []
            data = b"".join(self._pieces)
            self._pieces = []
        view = memoryview(data)
        frames = []
        position = 0
        end = len(data)
        needed = HEADER.size
        while end - position >= HEADER.size:
            size, kind = HEADER.unpack_from(data, position)
            start = position + HEADER.size
            if end - start < size:
                needed = HEADER.size + size
                break
            frames.append((kind, view[start : start + size]))
            position = start + size
        if position < end:
            rest = data[position:] if position else data  # no copy when nothing was used
            self._pieces = [rest]
            self._buffered = len(rest)
            self._needed = needed
        return frames


# Linux accepts at most this many buffers in one writev().
_IOV_MAX = 1024


class Outbox:
    """Frames waiting to be written to one pipe, written with as few system calls as possible.

    On a blocking pipe ``flush`` returns once everything is written; on a
    non-blocking one it writes what the pipe takes and reports whether
    anything is left.
    """

    __slots__ = ("_buffers", "_fd", "since")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffers: list[bytes | memoryview] = []
        self.since = 0.0  # when the oldest unwritten frame was added

    def __bool__(self) -> bool:
        return bool(self._buffers)

    def add(self, kind: int, payload: bytes = b"") -> None:
        self.add_frame(HEADER.pack(len(payload), kind), payload)

    def add_frame(self, header: bytes, payload: bytes) -> None:
        if not self._buffers:
            self.since = perf_counter()
        self._buffers += (header, payload)

    def add_first(self, kind: int, payload: bytes | memoryview) -> None:
        """Put a frame before every frame already waiting."""
        if not self._buffers:
            self.since = perf_counter()
        self._buffers[:0] = (HEADER.pack(len(payload), kind), payload)

    def flush(self) -> bool:
        """Write what the pipe takes; True when nothing is left to write."""
        buffers = self._buffers
        while buffers:
            try:
                written = os.writev(self._fd, buffers[:_IOV_MAX])
            except BlockingIOError:
                return False
            done = 0
            for buffer in buffers:
                if written < len(buffer):
                    break
                written -= len(buffer)
                done += 1
            del buffers[:done]
            if written:
                buffers[0] = memoryview(buffers[0])[written:]
        return True


# ---- the LOGS payload: events as the caller decodes them ---------------------------
#
# [generation: u64][u32 length, pickle][u32 length, pickle]...  (see log_spill for
# what the generation is for; a backend without spills sends 0)

_GENERATION = struct.Struct("<Q")
_LENGTH = struct.Struct("<I")


def pack_events(records: list[bytes], generation: int = 0) -> bytes:
    """A ``LOGS`` payload holding ``records``, as ``decode_events`` reads it."""
    parts = [_GENERATION.pack(generation)]
    for record in records:
        parts += (_LENGTH.pack(len(record)), record)
    return b"".join(parts)


def generation_of(payload: memoryview) -> int:
    return int(_GENERATION.unpack_from(payload, 0)[0])


def encode_event(kind: int, fields: Mapping[str, Any]) -> bytes:
    """Pickle one event; a value that does not pickle travels as its ``repr``."""
    try:
        return pickle.dumps((kind, fields), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        safe = {key: _picklable_or_repr(value) for key, value in fields.items()}
        return pickle.dumps((kind, safe), protocol=pickle.HIGHEST_PROTOCOL)


def _picklable_or_repr(value: Any) -> Any:
    try:
        pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return repr(value)
    return value


def decode_events(payload: bytes | memoryview) -> Iterator[tuple[int, dict[str, Any]] | Exception]:
    """The ``(kind, fields)`` of each event in a ``LOGS`` payload, or why one did not unpickle."""
    position = _GENERATION.size
    end = len(payload)
    while position + _LENGTH.size <= end:
        (size,) = _LENGTH.unpack_from(payload, position)
        position += _LENGTH.size
        try:
            yield pickle.loads(payload[position : position + size])
        except Exception as error:  # a class the caller cannot import, say
            yield error
        position += size
