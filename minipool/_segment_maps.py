"""Reading a segment (see ``_segments``): its header, its file mapped, and what is
reported when the last view of a mapping goes.

A header is what crosses the pipe in place of a value's large buffers: a tag
byte that no pickle starts with, flags, the file's path and where each
buffer lies in it; the value's pickle follows. The reader maps the file with
libc's ``mmap`` and hands out views of it; the mapping goes with the last view.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import struct
import weakref

# The first byte of a value that carries a segment (a pickle starts with PROTO, 0x80).
SEGMENT_TAG = 0x01
SHARED = 2  # flag: Pool.share's; mapped read-only and shared, removed by its Shared only
# tag, flags, path length, buffer count, then (offset, length) per buffer.
HEADER = struct.Struct("<BBHI")
PLACE = struct.Struct("<QQ")
# Segments whose mapping was unmapped in this process, by pool directory, for
# their writer (see take_unmapped); any thread adds.
_unmapped: dict[str, list[str]] = {}


def take_unmapped(directory: str) -> list[str]:
    """The segments of ``directory`` unmapped in this process since the last call: a
    worker's arguments, which it reports to the master (``UNMAPPED``), or the caller's
    results, which the master gives back to their worker (``RETURN``)."""
    found = _unmapped.get(directory)
    if not found:
        return []
    taken = found[:]
    del found[: len(taken)]  # what another thread appended meanwhile stays
    return taken


def writer_pid(path: str) -> int:
    """The process that wrote a segment (its name starts with the writer's pid)."""
    return int(os.path.basename(path).split("-", 1)[0])


def unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def segment_path(blob: bytes | memoryview) -> str | None:
    """The file a value's header names, or None for a plain pickle."""
    found = segment_of(blob)
    return None if found is None else found[0]


def segment_of(blob: bytes | memoryview) -> tuple[str, int] | None:
    """The file a value's header names and the bytes it uses; None for a plain pickle."""
    if not blob or blob[0] != SEGMENT_TAG:
        return None
    _, path, places, _ = _read_header(memoryview(blob))
    return path, sum(places[-1])


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
    _, flags, name_size, count = HEADER.unpack_from(view)
    places = [PLACE.unpack_from(view, HEADER.size + n * PLACE.size) for n in range(count)]
    start = HEADER.size + count * PLACE.size
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
    memory = _Memory.from_address(address)
    # Unmapped with the last view of it, and then reported to its writer, which
    # writes it again (a shared segment is its Shared's alone).
    reported = None if shared else path
    memory.mapping = _Mapping(address, size, reported)
    if reported is not None:
        _reporting.add(memory.mapping)
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

    __slots__ = ("__weakref__", "address", "report", "size")

    def __init__(self, address: int, size: int, report: str | None) -> None:
        self.address = address
        self.size = size
        self.report = report  # the path to report unmapped (see take_unmapped)

    def __del__(self) -> None:
        _libc.munmap(self.address, self.size)
        if self.report is not None:
            _unmapped.setdefault(os.path.dirname(self.report), []).append(self.report)


# The mappings that will report when unmapped. A fork copies every mapping into
# the child (a job's own child process, a fork-started pool's worker), which may
# read it long after this process let go: a segment mapped at a fork must never
# be written again, so a fork turns every report off, in parent and child alike.
_reporting: weakref.WeakSet[_Mapping] = weakref.WeakSet()


def _no_reports_after_fork() -> None:
    for mapping in list(_reporting):
        mapping.report = None
    _reporting.clear()


os.register_at_fork(before=_no_reports_after_fork)
