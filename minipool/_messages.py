"""What crosses the pipes between the master and a worker.

Vocabulary: a *job* is one ``fn(*args, **kwargs)`` call the caller asked for;
a ``Chunk`` is one or more jobs of the same function with consecutive job ids
(``submit`` makes chunks of one, ``map`` makes bigger ones); a *task* is a
chunk as the master sends it to one worker; a *batch* is the run of frames
the master writes to a worker in one system call; an ``Outcome`` is what comes
back for a task's jobs: one for the whole chunk, or several, in order, for a
chunk that streams results as it runs (the last is ``final``).

Every message travels as a frame: an 8-byte little-endian payload length, one
kind byte, then the payload (a pickle, or nothing). Frames let the master read
and write without blocking and let either side pass several messages in one
system call. A ``CHUNK`` payload starts with a ``CHUNK_PREFIX`` (first job id,
job count, flags), so that a worker knows which jobs it takes on before it
unpickles them.
"""

from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any, NamedTuple

HEADER = struct.Struct("<QB")
CHUNK_PREFIX = struct.Struct("<qIB")  # first job id, job count, flags
TIMED = 1  # flag: the chunk has a task_timeout; the worker stamps each job's start

# Master -> worker.
CHUNK = 1
STOP = 2  # finish what was sent before this frame, tear down, exit
RELEASE = 3  # a Shared was released: drop its object (the payload: its segment's path)
RETURN = 4  # results the caller let go of: write them again (paths; see join_paths)
# Worker -> master.
OUTCOME = 11
READY = 12  # init finished; jobs may now fail only on their own account
INIT_FAILED = 13
RECYCLING = 14  # past max_worker_memory: exiting; the tasks it did not claim never ran
LOGS = 15  # log events (see log_spill)
EXITING = 16  # torn down: the process only exits from here (the master bounds how long)
UNMAPPED = 17  # argument segments its jobs let go of (paths; see join_paths)


# How a worker runs the jobs of a chunk (``Chunk.tracking``):
UNTRACKED = 0  # one C-level loop, every result pickled at the end (jobs measured tiny)
ADAPTIVE = 1  # tracked, unless its first jobs prove tiny: then the rest untracked
TRACKED = 2  # tracked to the end: re-runs after a death, jobs with a task_timeout


class Chunk(NamedTuple):
    """Jobs with consecutive ids (given beside it, in the ``CHUNK_PREFIX``): one call of
    ``fn`` per item.

    With ``star`` each item is a tuple of arguments, ``fn(*item, **kwargs)``;
    without, ``fn(item)``: ``map`` over one iterable sends its items as they
    are, which pickles several times faster than one-element tuples.

    A tracked job has the worker publish its id before it starts it, and
    pickle its result while that id is up, so that a crash is pinned on the
    job that caused it and finished results can be sent while the chunk runs
    on. That costs about a microsecond a job, several times the cost of jobs
    that take a few hundred nanoseconds; so jobs measured below
    ``_scheduling.UNTRACKED_BELOW_SECONDS`` run untracked, as one C-level
    loop, and if their worker dies their jobs run again, tracked (see
    ``blame``). A chunk sent before its jobs were measured is ``ADAPTIVE``:
    the worker measures its first jobs and runs the rest untracked if they
    are tiny.
    ``fn`` stays pickled (see ``_pickling.dumps_function``) so that the worker
    can cache the function by its bytes instead of unpickling it per job.

    A ``NamedTuple`` sent as a plain tuple, like ``Outcome``, and for the same
    reason: there is one per task, pickled in the caller's thread (the one
    ``submit`` runs in) and unpickled in the worker, and a frozen dataclass's
    ``__reduce__`` costs a microsecond or two on each side.
    """

    fn: bytes
    items: list[Any]
    star: bool
    kwargs: dict[str, Any] | None
    tracking: int = TRACKED
    attempts: int = 0  # runs of these jobs that failed already (see Pool's retries)

    @classmethod
    def of(cls, fields: tuple[Any, ...]) -> Chunk:
        """The chunk whose pickled tuple unpickled to ``fields``."""
        return tuple.__new__(cls, fields)


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


Buffer = bytes | memoryview
# The length of an OUTCOME frame's envelope (see Outcome.encode).
_ENVELOPE_SIZE = struct.Struct("<I")


class Outcome(NamedTuple):
    """The outcomes of ``size`` consecutive jobs of one task, from its job ``offset`` on.

    ``values`` is either one pickle of the list of their values (an untracked
    chunk pickles its results at once) or a pickle per job, each made while
    that job was the one in hand (``b""`` for a job that failed). ``errors``
    maps a job's position in this outcome to its error; it is ``None`` when
    every job succeeded, which keeps the common case small. ``seconds`` is how
    long the worker spent on these jobs, used to size later chunks.

    ``task`` is the task's number at its worker (see ``shared.Gate``; 0 where
    there is no such count). The ``final`` outcome of a task is its last: any
    of its jobs after it never started (the pool was stopped).

    A ``NamedTuple``, not a frozen dataclass like the other messages: there is
    one per task, and a frozen dataclass costs 2 us to unpickle in the master
    against 0.4 us for a tuple.
    """

    task: int
    offset: int
    size: int
    values: Buffer | list[Buffer]
    errors: dict[int, ErrorInfo] | None
    seconds: float
    final: bool

    def encode(self) -> list[Buffer]:
        """The ``OUTCOME`` frame's payload, as buffers to write one after the other.

        An envelope (the fields, with the values' lengths in place of the
        values) and then the value pickles as they are: nested in the envelope's
        pickle, a result of megabytes would be copied twice more on each side.
        """
        values = self.values
        lengths: int | list[int]
        if isinstance(values, (bytes, memoryview)):
            lengths, blobs = len(values), [values]
        else:
            lengths, blobs = [len(value) for value in values], values
        fields = (self.task, self.offset, self.size, lengths, self.errors, self.seconds, self.final)
        envelope = pickle.dumps(fields, protocol=pickle.HIGHEST_PROTOCOL)
        return [_ENVELOPE_SIZE.pack(len(envelope)), envelope, *blobs]

    @classmethod
    def decode(cls, payload: Buffer) -> Outcome:
        """The outcome ``encode`` made; its values are views into ``payload``, not copies."""
        view = memoryview(payload)
        start = _ENVELOPE_SIZE.size
        end = start + _ENVELOPE_SIZE.unpack_from(view)[0]
        task, offset, size, lengths, errors, seconds, final = pickle.loads(view[start:end])
        values: Buffer | list[Buffer]
        if isinstance(lengths, int):
            values = view[end : end + lengths]
        else:
            values = []
            for length in lengths:
                values.append(view[end : end + length])
                end += length
        return tuple.__new__(cls, (task, offset, size, values, errors, seconds, final))

    @property
    def nbytes(self) -> int:
        """How big its value pickles are (for sizing later chunks)."""
        values = self.values
        if isinstance(values, (bytes, memoryview)):
            return len(values)
        return sum(len(value) for value in values)


def chunk_header(first_job_id: int, size: int, timed: bool, payload_size: int) -> bytes:
    """The frame header and ``CHUNK_PREFIX`` of a chunk whose pickle is ``payload_size`` bytes."""
    flags = TIMED if timed else 0
    frame = HEADER.pack(CHUNK_PREFIX.size + payload_size, CHUNK)
    return frame + CHUNK_PREFIX.pack(first_job_id, size, flags)


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

    @property
    def mid_frame(self) -> bool:
        """Whether part of a frame has come and the rest has not."""
        return bool(self._pieces)


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

    def add_parts(self, kind: int, parts: list[bytes | memoryview]) -> None:
        """One frame whose payload is ``parts`` one after the other (never joined)."""
        if not self._buffers:
            self.since = perf_counter()
        self._buffers += (HEADER.pack(sum(len(part) for part in parts), kind), *parts)

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


def join_paths(paths: list[str]) -> bytes:
    """The payload of a ``RETURN`` or ``UNMAPPED`` frame: segment paths (see _segments)."""
    return b"\0".join(map(os.fsencode, paths))


def split_paths(payload: bytes | memoryview) -> list[str]:
    return [os.fsdecode(path) for path in bytes(payload).split(b"\0")]


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


def encode_event(kind: int, job_id: int | None, event: Any) -> bytes:
    """Pickle one event of job ``job_id``; a value that does not pickle travels as its
    ``repr`` (a value of ``event``, or of a dict or tuple ``event`` holds)."""
    try:
        return pickle.dumps((kind, job_id, event), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return pickle.dumps((kind, job_id, _safe(event)), protocol=pickle.HIGHEST_PROTOCOL)


def _safe(value: Any, depth: int = 2) -> Any:
    if depth and isinstance(value, tuple):
        return tuple(_safe(item, depth - 1) for item in value)
    if depth and isinstance(value, Mapping):
        return {key: _safe(item, depth - 1) for key, item in value.items()}
    return _picklable_or_repr(value)


def _picklable_or_repr(value: Any) -> Any:
    try:
        pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return repr(value)
    return value


def decode_events(
    payload: bytes | memoryview,
) -> Iterator[tuple[int, int | None, Any] | BaseException]:
    """The ``(kind, job_id, event)`` of each event in a ``LOGS`` payload, or why one did
    not unpickle."""
    position = _GENERATION.size
    end = len(payload)
    while position + _LENGTH.size <= end:
        (size,) = _LENGTH.unpack_from(payload, position)
        position += _LENGTH.size
        event: tuple[int, int | None, Any] | BaseException
        try:
            event = pickle.loads(payload[position : position + size])
        except BaseException as error:  # a class the caller cannot import; a hostile __reduce__
            event = error
        yield event
        position += size
