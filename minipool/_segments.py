"""Large buffers through shared memory: the segment files of a pool's directory.

Pickle protocol 5 hands a pickler's ``buffer_callback`` each buffer that an
object offers out of band (a numpy array's data, a ``pickle.PickleBuffer``,
what pandas and pyarrow pass that way; ``bytes`` and ``bytearray`` offer
none, and stay in the pickle unless wrapped in a ``PickleBuffer``). Those of
``OUT_OF_BAND_MIN_BYTES`` or more leave the pickle: ``SegmentDir.write`` puts
them, one after the other, into a new file (a *segment*) in the pool's
directory under ``/dev/shm``, and what crosses the pipe is a short header that
names the file, then the pickle. ``_segment_maps.open_value`` maps the file,
and the unpickler builds the value on views of that mapping: the receiver
copies nothing, and the sender copies once, into the file, instead of through
the pipe's kernel buffer on both sides.

The mapping is private (copy on write): a value that was writable is writable,
and a write changes the receiver's copy only. A buffer that was read-only
comes back read-only (pickle marks it).

Who removes a segment's file:

- A result (a worker's file): its worker. When the caller has dropped every
  view of it, the master gives it back (``RETURN``), and the worker writes a
  later result into it; if the worker is gone first, the master removes it.
- A chunk's arguments (the caller's file): the ``Task`` that made them, when
  it is dropped; until then a dead worker's tasks can be sent again, and
  every worker that runs them maps the same file. If the worker that ran it
  said it let go of every view of the file (``UNMAPPED``, just before the
  task's last outcome), the caller keeps the file and writes later arguments
  into it instead (``drop``, ``_reuse``): its pages exist already. A file a
  job kept a view of is never written again.
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
import itertools
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pickle import PickleBuffer

from ._segment_maps import HEADER, PLACE, SEGMENT_TAG, SHARED, unlink

# Buffers this large and up leave the pickle for a segment. Below it the pipe is
# faster: a segment costs files opened, a mapping and page faults on both sides.
# Results of one size, through shared memory / through the pipe, in MB/s
# (benchmarks/bench_large.py --only crossover, fork, 2 workers): 256 KiB 900 /
# 1,207; 512 KiB 1,451 / 1,495; 1 MiB 2,107 / 1,071; 4 MiB 2,854 / 908.
OUT_OF_BAND_MIN_BYTES = 512 * 1024
# Where segments live: a tmpfs, so that a segment is memory, never disk.
_SHM = "/dev/shm"
_DIRECTORY_PREFIX = "minipool-"
# Each buffer starts at a multiple of this, as numpy and SIMD code like their data.
_ALIGNMENT = 64
_names = itertools.count()
# Per process, a few random bytes after its pid in each name it writes: a later
# process with the same pid (pids are reused) never takes an earlier one's files
# for its own (see returned).
_writer: tuple[int, str] = (0, "")
# A caller keeps argument segments its workers let go of, to write again (see
# SegmentDir.drop), up to this many bytes, and never more than an eighth of
# /dev/shm (a container's is 64 MiB): writing into a file whose pages exist costs
# less than half of writing a new one (16 MiB: 2.3 ms against 5.3 ms), and
# bench_large.py's arguments went from 1,850 to 3,500 MB/s.
REUSE_MAX_BYTES = 128 << 20
REUSABLE = "free-"  # in the name of a file kept to be written again


class SegmentDir:
    """A pool's directory of segments, as one process of the pool writes into it.

    The caller's (``owner``) writes arguments and removes the directory; a
    worker's writes results.
    """

    def __init__(self, path: str, *, owner: bool = False) -> None:
        self.path = path
        self._owner_pid = os.getpid() if owner else None
        # A worker's lifeline may remove the directory while a job writes a
        # segment: under this lock, no file is made once the removal began.
        self._lock = threading.Lock()
        self._removed = False
        # The caller's argument files: those a live task holds; of those, the ones the
        # worker that read them let go of; and files to write again, (size, path).
        self._owned: set[str] = set()
        self._released: set[str] = set()
        self._reusable: list[tuple[int, str]] = []
        self._reusable_bytes = 0
        self._reuse_max = min(REUSE_MAX_BYTES, _capacity(path) // 8)

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
        return cls(path, owner=True)

    def write(self, buffers: Sequence[PickleBuffer], *, shared: bool = False) -> bytes:
        """Put ``buffers`` into a new segment; the header that names it (see
        ``_segment_maps.open_value``).

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
        flags = SHARED if shared else 0
        header = HEADER.pack(SEGMENT_TAG, flags, len(name), len(places))
        return b"".join([header, *(PLACE.pack(*place) for place in places), name])

    def _new_file(self, buffers: Sequence[PickleBuffer], places: list[tuple[int, int]]) -> str:
        path = self._reuse(sum(places[-1]))
        with self._lock:
            if self._removed:
                raise FileNotFoundError(f"{self.path} was removed: the pool is gone")
            if path is None:
                path = self._new_path()
                flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC
            else:
                flags = os.O_WRONLY | os.O_CLOEXEC
            fd = os.open(path, flags, 0o600)
        try:
            for buffer, (start, _) in zip(buffers, places, strict=True):
                _write_at(fd, buffer.raw(), start)
        except BaseException:
            unlink(path)  # the directory may be gone too (see remove)
            raise
        finally:
            os.close(fd)
        return path

    def _new_path(self, kind: str = "") -> str:
        """A name no process of the pool uses: its writer's pid first (remove_written_by)."""
        return os.path.join(self.path, f"{writer_prefix()}{kind}{next(_names)}")

    # ---- the caller's argument segments, written again once read ---------------------

    def own(self, path: str, size: int) -> OwnedSegment:
        """``path`` (``size`` bytes) holds a task's arguments, until the task is dropped."""
        with self._lock:
            self._owned.add(path)
        return OwnedSegment(self, path, size)

    def sent(self, path: str) -> None:
        """Its task was sent to a worker: only a release from that worker counts now."""
        with self._lock:
            self._released.discard(path)

    def released(self, paths: list[str]) -> None:
        """The worker that read these files let go of every view of them (``UNMAPPED``)."""
        with self._lock:
            self._released.update(path for path in paths if path in self._owned)

    def drop(self, path: str, size: int) -> None:
        """Its task is gone. A file its worker let go of is kept to be written again;
        any other is removed (a worker may still read it: a job kept its argument)."""
        with self._lock:
            self._owned.discard(path)
            released = path in self._released
            self._released.discard(path)
        if released:
            self._keep(path, size)
        else:
            unlink(path)

    def returned(self, paths: list[str]) -> None:
        """In a worker: the caller let go of every view of these results (``RETURN``).
        Only this process's own: an earlier one with its pid had its files removed."""
        own = writer_prefix()
        for path in paths:
            if not os.path.basename(path).startswith(own):
                continue
            try:
                size = os.stat(path).st_size
            except OSError:  # removed meanwhile
                continue
            self._keep(path, size)

    def _keep(self, path: str, size: int) -> None:
        """Keep a file nobody reads any more, to write into again; or remove it, past the
        bound on what is kept."""
        with self._lock:
            if not self._removed and self._reusable_bytes + size <= self._reuse_max:
                kept = self._new_path(REUSABLE)
                with contextlib.suppress(OSError):  # gone: nothing to keep
                    os.rename(path, kept)
                    self._reusable.append((size, kept))
                    self._reusable_bytes += size
                return
        unlink(path)

    def _reuse(self, size: int) -> str | None:
        """A kept file of ``size`` to twice that many bytes, renamed for use; None if none."""
        with self._lock:
            fitting = [entry for entry in self._reusable if size <= entry[0] <= 2 * size]
            if not fitting:
                return None
            entry = min(fitting)
            self._reusable.remove(entry)
            self._reusable_bytes -= entry[0]
            path = self._new_path()
            try:
                os.rename(entry[1], path)
            except OSError:
                return None
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


def writer_prefix() -> str:
    """How the names of the segments this process writes begin: ``PID-TOKEN-``."""
    global _writer
    pid = os.getpid()
    if _writer[0] != pid:  # first use, or a forked child
        _writer = (pid, f"{pid}-{secrets.token_hex(4)}-")
    return _writer[1]


def _capacity(path: str) -> int:
    """The size of the file system ``path`` is on (0 if it cannot be known)."""
    try:
        facts = os.statvfs(path)
    except OSError:
        return 0
    return facts.f_frsize * facts.f_blocks


def _write_at(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


class OwnedSegment:
    """A segment of the caller's arguments, held by its task: dropped with it (see
    ``SegmentDir.drop``; in the caller's process only: a forked child drops copies of
    tasks too)."""

    __slots__ = ("_directory", "_pid", "path", "size")

    def __init__(self, directory: SegmentDir, path: str, size: int) -> None:
        self._directory = directory
        self.path = path
        self.size = size
        self._pid = os.getpid()

    def sent(self) -> None:
        self._directory.sent(self.path)

    def __del__(self) -> None:
        if os.getpid() == self._pid:
            self._directory.drop(self.path, self.size)


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
