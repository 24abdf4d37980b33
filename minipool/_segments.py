"""Large buffers through shared memory: the segment files of a pool's directory.

Pickle protocol 5 hands a pickler's ``buffer_callback`` each buffer that an
object offers out of band (a numpy array's data, a ``bytearray``, a
``pickle.PickleBuffer``, what pandas and pyarrow pass that way). Those of
``OUT_OF_BAND_MIN_BYTES`` or more leave the pickle: ``SegmentDir.write`` puts
them, one after the other, into a new file (a *segment*) in the pool's
directory under ``/dev/shm``, and what crosses the pipe is a short header that
names the file, then the pickle. ``open_value`` maps the file, and the
unpickler builds the value on views of that mapping: the receiver copies
nothing, and the sender copies once, into the file, instead of through the
pipe's kernel buffer on both sides.

The mapping is private (copy on write): a value that was writable is writable,
and a write changes the receiver's copy only. A buffer that was read-only
comes back read-only (pickle marks it).

Who removes a segment's file:

- A result (a worker's file): the master, once it mapped it (``HANDED_OVER``).
  The mapping keeps the memory until the last view of it is dropped.
- A chunk's arguments (the caller's file): the ``Task`` that made them, when
  it is dropped; until then a dead worker's tasks can be sent again, and
  every worker that runs them maps the same file.
- What is left when a process dies: the master removes the files a dead
  worker wrote, and the whole directory at shutdown; a worker whose master's
  process is gone removes the directory before it exits (see the worker's
  lifeline); and a new pool removes the directories of pools whose process
  is gone (everything was SIGKILLed at once).

A full ``/dev/shm`` (a container's 64 MiB one) fails the write with
``ENOSPC``: the value then goes through the pipe, as if small. Writes go
through ``os.pwrite``, never through a mapping, because a write to a mapping
of a full tmpfs is a SIGBUS.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import mmap
import os
import shutil
import struct
import tempfile
import threading
from collections.abc import Sequence
from pickle import PickleBuffer

# Buffers this large and up leave the pickle for a segment. Below it the pipe is
# faster: a segment costs files opened, a mapping and page faults on both sides.
# Results of one size, through shared memory / through the pipe, in MB/s
# (benchmarks/bench_large.py --only crossover, fork, 2 workers): 256 KiB 900 /
# 1,207; 512 KiB 1,451 / 1,495; 1 MiB 2,107 / 1,071; 4 MiB 2,854 / 908.
OUT_OF_BAND_MIN_BYTES = 512 * 1024
# The first byte of a value that carries a segment (a pickle starts with PROTO, 0x80).
SEGMENT_TAG = 0x01
HANDED_OVER = 1  # flag: the reader removes the file once it mapped it
SHARED = 2  # flag: Pool.share's; mapped read-only and shared, removed by its Shared only
# Where segments live: a tmpfs, so that a segment is memory, never disk.
_SHM = "/dev/shm"
_DIRECTORY_PREFIX = "minipool-"
# Each buffer starts at a multiple of this, as numpy and SIMD code like their data.
_ALIGNMENT = 64
# tag, flags, path length, buffer count, then (offset, length) per buffer.
_HEADER = struct.Struct("<BBHI")
_PLACE = struct.Struct("<QQ")
_names = itertools.count()


class SegmentDir:
    """A pool's directory of segments, as one process of the pool writes into it.

    ``hand_over``: whether the segments this process writes are the reader's
    to remove (a worker's results) or the writer's (the caller's arguments).
    """

    def __init__(self, path: str, *, hand_over: bool, owner: bool = False) -> None:
        self.path = path
        self._flags = HANDED_OVER if hand_over else 0
        self._owner_pid = os.getpid() if owner else None
        # A worker's lifeline may remove the directory while a job writes a
        # segment: under this lock, no file is made once the removal began.
        self._lock = threading.Lock()
        self._removed = False

    @classmethod
    def create(cls) -> SegmentDir | None:
        """A new directory for a pool of this process, or None where there is no tmpfs."""
        if not os.path.isdir(_SHM) or not os.access(_SHM, os.W_OK):
            return None
        remove_abandoned()
        try:
            path = tempfile.mkdtemp(prefix=f"{_DIRECTORY_PREFIX}{os.getpid()}-", dir=_SHM)
        except OSError:  # full, or read-only after all: every value goes through the pipe
            return None
        return cls(path, hand_over=False, owner=True)

    def write(self, buffers: Sequence[PickleBuffer], *, shared: bool = False) -> bytes:
        """Put ``buffers`` into a new segment; the header that names it (see ``open_value``).

        ``shared``: a segment of ``Pool.share``'s, which readers map read-only and
        shared, and which only its ``Shared`` removes. Raises ``OSError`` if the
        segment cannot be made (``/dev/shm`` is full).
        """
        places, end = [], 0
        for buffer in buffers:
            start = -(-end // _ALIGNMENT) * _ALIGNMENT
            end = start + buffer.raw().nbytes
            places.append((start, end - start))
        path = self._new_file(buffers, places)
        name = os.fsencode(path)
        flags = SHARED if shared else self._flags
        header = _HEADER.pack(SEGMENT_TAG, flags, len(name), len(places))
        return b"".join([header, *(_PLACE.pack(*place) for place in places), name])

    def _new_file(self, buffers: Sequence[PickleBuffer], places: list[tuple[int, int]]) -> str:
        path = os.path.join(self.path, f"{os.getpid()}-{next(_names)}")
        with self._lock:
            if self._removed:
                raise FileNotFoundError(f"{self.path} was removed: the pool is gone")
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        try:
            for buffer, (start, _) in zip(buffers, places, strict=True):
                _write_at(fd, buffer.raw(), start)
        except BaseException:
            unlink(path)  # the directory may be gone too (see remove)
            raise
        finally:
            os.close(fd)
        return path

    def remove_written_by(self, pid: int) -> None:
        """Remove the segments that process ``pid`` wrote and nobody took (it died)."""
        prefix = f"{pid}-"
        with contextlib.suppress(OSError):
            for name in os.listdir(self.path):
                if name.startswith(prefix):
                    unlink(os.path.join(self.path, name))

    def remove(self) -> None:
        """Remove the directory and every segment in it; none is made after this.

        In the process that made it, or in a worker (its master is gone); never
        in a process forked from the pool's.
        """
        if self._owner_pid is not None and self._owner_pid != os.getpid():
            return
        with self._lock:
            self._removed = True
        shutil.rmtree(self.path, ignore_errors=True)


def _write_at(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


class OwnedSegment:
    """A segment of the caller's arguments, held by its task: removed once the task is
    dropped (in the caller's process only: a forked child drops copies of tasks too)."""

    __slots__ = ("_pid", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._pid = os.getpid()

    def __del__(self) -> None:
        if os.getpid() == self._pid:
            unlink(self.path)


def unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def segment_path(blob: bytes | memoryview) -> str | None:
    """The file a value's header names, or None for a plain pickle."""
    if not blob or blob[0] != SEGMENT_TAG:
        return None
    return _read_header(memoryview(blob))[1]


def open_value(blob: bytes | memoryview) -> tuple[memoryview, list[memoryview]]:
    """The pickle of a value and the buffers it was sent with (views of its segment).

    Raises ``OSError`` if the segment is gone (its pool was shut down).
    """
    view = memoryview(blob)
    flags, path, places, end = _read_header(view)
    return view[end:], _open(path, places, flags)


def open_shared(header: bytes) -> list[memoryview]:
    """The buffers of a ``Pool.share`` segment: read-only views of one shared mapping.

    Raises ``FileNotFoundError`` once its ``Shared`` was released.
    """
    flags, path, places, _ = _read_header(memoryview(header))
    return _open(path, places, flags)


def _read_header(view: memoryview) -> tuple[int, str, list[tuple[int, int]], int]:
    """The flags, the file and the buffers' places a header gives, and where it ends."""
    _, flags, name_size, count = _HEADER.unpack_from(view)
    places = [_PLACE.unpack_from(view, _HEADER.size + n * _PLACE.size) for n in range(count)]
    start = _HEADER.size + count * _PLACE.size
    path = os.fsdecode(bytes(view[start : start + name_size]))
    return flags, path, places, start + name_size


def _open(path: str, places: list[tuple[int, int]], flags: int) -> list[memoryview]:
    segment = _map(path, sum(places[-1]), flags)
    return [segment[offset : offset + length] for offset, length in places]


def _map(path: str, size: int, flags: int) -> memoryview:
    """The file mapped: private and writable (copy on write), or, for a shared segment,
    shared and read-only. Not faulted in at once (MAP_POPULATE): a job that reads a
    slice would pay for the whole array in every worker (bench_large's "shared": 171 ms
    against 113 ms without)."""
    shared = flags & SHARED
    mode = (mmap.MAP_SHARED, mmap.PROT_READ) if shared else _PRIVATE
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        address = _libc.mmap(None, size, mode[1], mode[0], fd, 0)
    finally:
        os.close(fd)
    if address == _MAP_FAILED:
        error = ctypes.get_errno()
        raise OSError(error, f"cannot map {path}: {os.strerror(error)}")
    if flags & HANDED_OVER:
        unlink(path)
    memory = _Memory.from_address(address)
    memory.mapping = _Mapping(address, size)  # unmapped with the last view of it
    view = memoryview(memory).cast("B")[:size]
    return view.toreadonly() if shared else view


# The mapping is made with libc's mmap, not Python's: an mmap.mmap keeps a file
# descriptor open for as long as it lives (until Python 3.13's trackfd=False),
# and a caller that keeps a thousand results would run out of descriptors.
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = ctypes.c_void_p(-1).value
_PRIVATE = (mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)


class _Memory(ctypes.c_ubyte * (1 << 46)):  # type: ignore[misc]
    """A segment's mapped memory, as a buffer that views can hold.

    One array type for every mapping, longer than any: views are cut to the
    mapping's size before anyone sees them (a type per size would be kept
    forever). ctypes is untyped here: ``c_ubyte * n`` is a type made at run time.
    """

    mapping: _Mapping


class _Mapping:
    """Unmaps a segment's mapping when dropped: the ``_Memory`` over it holds this, and
    every view of the memory holds that."""

    __slots__ = ("address", "size")

    def __init__(self, address: int, size: int) -> None:
        self.address = address
        self.size = size

    def __del__(self) -> None:
        _libc.munmap(self.address, self.size)


def remove_abandoned() -> None:
    """Remove the segment directories of pools whose process is gone.

    Each directory is named after its pool's process; a process that was
    SIGKILLed together with its workers could not remove its own.
    """
    with contextlib.suppress(OSError):
        for name in os.listdir(_SHM):
            if name.startswith(_DIRECTORY_PREFIX) and not _alive(name):
                shutil.rmtree(os.path.join(_SHM, name), ignore_errors=True)


def _alive(name: str) -> bool:
    pid = name[len(_DIRECTORY_PREFIX) :].split("-", 1)[0]
    if not pid.isdigit():
        return True  # not one of ours
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
