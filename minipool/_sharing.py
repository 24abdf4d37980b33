"""``Pool.share``: one copy of an object in shared memory, for every job that reads it.

The caller pickles the object once into a segment of the pool's directory,
every buffer out of band and the pickle itself after them (see ``_segments``).
A ``Shared`` pickles as that segment's header, a hundred bytes, wherever it
sits in a job's arguments. In a worker, the first job that gets it maps the
segment read-only and shared, so that every worker reads the same pages (a
numpy array arrives as a read-only view of them, copied nowhere), and
unpickles the rest once; later jobs of that worker get the same object from
its cache, until ``release()`` tells the workers to drop it.

On a Dask cluster, ``share`` scatters the object to every worker
(``broadcast=True``), and a ``Shared`` pickles as the key of its data there:
every task depends on the live ones' data, so Dask puts it on the task's
worker before the task runs (a worker that joined later fetches it from a
peer), and a job reads it there. Where there is no ``/dev/shm``, a ``Shared`` pickles as its
value: jobs get a copy each.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from ._pickling import dumps_out_of_band
from ._segment_maps import open_shared, segment_path, unlink
from ._segments import SegmentDir

T = TypeVar("T")


class Shared(Generic[T]):
    """An object put once into shared memory for many jobs (see ``Pool.share``).

    Passed anywhere in a job's arguments, it arrives in the job as the object
    itself. ``value`` is that same object in the caller, read from the shared
    copy (the original can be dropped; on a cluster, it is the caller's own);
    ``release()`` frees the shared copy, and the pool frees every one at shutdown.
    """

    __slots__ = ("_by_value", "_cluster", "_header", "_lock", "_on_release", "_released")

    def __init__(
        self,
        header: bytes | None,
        on_release: Callable[[str], None] | None = None,
        by_value: Any = None,
        cluster: Any = None,
    ) -> None:
        self._header = header  # None: on a cluster, or by value (see the module docstring)
        self._by_value = by_value
        self._cluster = cluster  # the Dask future of its scattered data
        self._on_release = on_release
        self._released = False
        self._lock = threading.Lock()

    @property
    def value(self) -> T:
        """The object, as jobs get it: numpy arrays as read-only views of the shared copy."""
        if self._header is None:
            return cast(T, self._by_value)
        if self._released:
            raise ValueError("this Shared was released; its value is gone")
        return cast(T, attach(self._header))

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        """Free the shared copy; jobs that get this ``Shared`` after it fail. Idempotent."""
        with self._lock:
            if self._released:
                return
            self._released = True
        if self._cluster is not None:
            if self._on_release is not None:
                self._on_release(self._cluster.key)  # no new task depends on it
            self._cluster.release()  # the cluster drops its copies once nothing holds them
            self._cluster = None
            return
        path = None if self._header is None else segment_path(self._header)
        if path is not None:
            unlink(path)
            forget(path)
            if self._on_release is not None:
                self._on_release(path)

    def __reduce__(self) -> tuple[Any, ...]:
        if self._released:
            raise ValueError(
                "this Shared was released: it cannot be sent to a job any more (release a "
                "Shared only once the jobs that use it are done)"
            )
        if self._cluster is not None:
            return (from_cluster, (self._cluster.key,))
        if self._header is None:
            return (_identity, (self._by_value,))
        return (attach, (self._header,))

    def __repr__(self) -> str:
        state = "released" if self._released else "shared"
        return f"<minipool.Shared ({state})>"


def share(value: T, segments: SegmentDir | None, on_release: Callable[[str], None]) -> Shared[T]:
    """``value`` in a new segment of ``segments`` (by value where there are none)."""
    if segments is None:
        return Shared(None, by_value=value)
    data, buffers = dumps_out_of_band(value)
    parts = [*buffers, pickle.PickleBuffer(data)]
    try:
        header = segments.write(parts, shared=True)
    except OSError as error:
        size = sum(part.raw().nbytes for part in parts)
        raise OSError(
            error.errno,
            f"share() could not put {size:,} bytes into shared memory ({error.strerror}). "
            "Make room in /dev/shm (a container's is often 64 MiB: docker run --shm-size), "
            "or pass the object to the jobs themselves.",
        ) from error
    return Shared(header, on_release)


def scattered(value: T, client: Any, on_release: Callable[[str], None]) -> tuple[Shared[T], Any]:
    """``value`` scattered to every worker of a Dask cluster (``client``'s), and the
    future of its data there; ``on_release`` gets the future's key."""
    # In a list: scatter() would scatter a list's items one by one. hash=False: a
    # large object is not hashed, and two shares of it are two.
    (future,) = client.scatter([value], broadcast=True, hash=False)
    return Shared(None, on_release, by_value=value, cluster=future), future


def from_cluster(key: str) -> Any:
    """In a Dask worker: the object a scattered ``Shared`` stands for."""
    from distributed import get_worker

    worker = get_worker()
    try:
        return worker.data[key]
    except KeyError:
        # Not a dependency of this task: released as it was sent, or passed to
        # another pool than the one that shared it.
        raise ValueError(
            f"this job's Shared argument is not on Dask worker {worker.name}: it was released "
            "before the job ran, or it belongs to another pool (pass a Shared only to the "
            "pool whose share() made it)"
        ) from None


def _identity(value: T) -> T:
    return value


# In a worker (and in the caller, for Shared.value): path -> the object, unpickled once.
_attached: dict[str, Any] = {}


def attach(header: bytes) -> Any:
    """The object a ``Shared`` stands for (what unpickling one gives in a worker)."""
    path = segment_path(header)
    assert path is not None
    if path not in _attached:
        try:
            *buffers, data = open_shared(header)
        except FileNotFoundError:
            raise ValueError(
                "this job's Shared argument was released before the job ran (or its pool "
                "was shut down); release a Shared only once the jobs that use it are done"
            ) from None
        _attached[path] = pickle.loads(data, buffers=buffers)
    return _attached[path]


def forget(path: str) -> None:
    """A ``Shared`` was released: this worker lets go of its copy."""
    _attached.pop(path, None)
