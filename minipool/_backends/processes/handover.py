"""``init`` and ``init_args``, handed to each worker process as multiprocessing creates it.

``init_args`` may carry multiprocessing's own primitives (``Queue``, ``Lock``,
``Event``, ``Value``, ...), as the stdlib pools allow. Those pickle only while
multiprocessing starts a process (its "spawning" state, in which they pass
their pipes' fds and their semaphores to that child); with fork they are not
pickled at all, but inherited. So the init call rides in each worker's
``Process`` arguments as an ``InitCall``, and is pickled, if at all, inside
``Process.start()``: by cloudpickle (``_by_value``), so that ``init`` may be a lambda or a
closure, except what holds a fd, which is left to multiprocessing's own
pickler (see ``_Pickler``). A respawned worker gets it the same way.

Rejected: pickling them once in ``Pool()``, as version 1 did (and as the Dask
backend must): a primitive refuses to be pickled outside a process start.

A lock or semaphore made by the fork context (what ``multiprocessing.Queue()``
and its kin are, by default, before Python 3.14 on Linux) has no name to be
found by: only forked processes can share it. ``fork_only_part`` tries the
pickling once in ``Pool()``, which finds those and anything else that cannot
travel (see ``start_method``).
"""

from __future__ import annotations

import io
import pickle
import socket
from collections import ChainMap
from collections.abc import Callable
from multiprocessing import context as mp_context
from multiprocessing.connection import Connection
from multiprocessing.heap import Arena
from multiprocessing.reduction import ForkingPickler
from multiprocessing.synchronize import SemLock
from typing import Any, ClassVar

from ... import _by_value as by_value
from ..._pickling import PROTOCOL


class InitCall:
    """``init(*init_args)`` as it reaches a worker: the objects themselves in the caller
    and in a forked worker, a pickle of them in any other until ``load``."""

    __slots__ = ("_call", "_fd_holders", "_pickled")

    def __init__(self, init: Callable[..., Any], init_args: tuple[Any, ...]) -> None:
        self._call: tuple[Callable[..., Any], tuple[Any, ...]] | None = (init, init_args)
        self._pickled = b""
        self._fd_holders: list[Any] = []

    def __reduce__(self) -> tuple[Any, ...]:
        # Called by multiprocessing's pickler while it starts a worker, and only then.
        buffer = io.BytesIO()
        pickler = _Pickler(buffer, protocol=PROTOCOL)
        pickler.dump(self._call)
        return (_pickled_call, (buffer.getvalue(), pickler.fd_holders))

    def load(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """``(init, init_args)``, unpickled here on first use: in the worker's init, so that
        what fails to unpickle is an init failure with its traceback."""
        if self._call is None:
            unpickler = _Unpickler(io.BytesIO(self._pickled), self._fd_holders)
            self._call = unpickler.load()
            self._pickled, self._fd_holders = b"", []
        assert self._call is not None
        return self._call


def _pickled_call(pickled: bytes, fd_holders: list[Any]) -> InitCall:
    call = InitCall.__new__(InitCall)
    call._call, call._pickled, call._fd_holders = None, pickled, fd_holders
    return call


# What passes a fd to the child being started (multiprocessing.reduction.DupFd):
# pipe ends (inside Queue, SimpleQueue), sockets, and the arenas that Value and
# Array live in.
_FD_HOLDERS = (Connection, socket.socket, Arena)


class _Pickler(by_value.Pickler):
    """cloudpickle, with multiprocessing's reducers, leaving what holds a fd to
    multiprocessing's own pickler.

    That pickler is the one pickling the worker's whole ``Process``, with one
    memo: an arena that holds one of the user's ``Value``s and one of the
    pool's own is passed to the child once. Pickled here as well, it was
    passed twice, which spawn refuses ("bad value(s) in fds_to_keep").
    """

    # Its reducers include one for each ctypes type that sharedctypes makes
    # (``c_int * 4`` for an Array of 4), registered as it makes them. The
    # registry is private, and the one place multiprocessing keeps them.
    dispatch_table: ClassVar[ChainMap[Any, Any]] = ChainMap(
        by_value.Pickler.dispatch_table,
        ForkingPickler._extra_reducers,  # type: ignore[attr-defined]
    )

    def __init__(self, file: io.BytesIO, protocol: int) -> None:
        super().__init__(file, protocol=protocol)
        self.fd_holders: list[Any] = []

    def persistent_id(self, obj: Any) -> int | None:
        if isinstance(obj, _FD_HOLDERS):
            self.fd_holders.append(obj)
            return len(self.fd_holders) - 1
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, fd_holders: list[Any]) -> None:
        super().__init__(file)
        self._fd_holders = fd_holders

    def persistent_load(self, pid: Any) -> Any:
        return self._fd_holders[pid]


def fork_only_part(init: InitCall) -> str | None:
    """Pickle ``init`` as a worker's start will; say which part only fork can hand over
    (``None``: all can), or raise ``TypeError`` naming the part that cannot be pickled."""
    fn, args = init.load()
    parts: list[tuple[str, Any]] = [("init", fn)] + [
        (f"init_args[{i}] ({type(a).__name__})", a) for i, a in enumerate(args)
    ]
    previous = mp_context.get_spawning_popen()
    mp_context.set_spawning_popen(_TrialStart())  # type: ignore[arg-type]
    try:
        for name, part in parts:
            pickler = _TrialPickler(io.BytesIO(), protocol=PROTOCOL)
            try:
                pickler.dump(part)
            except Exception as error:
                raise TypeError(
                    f"cannot send {name} to the worker processes: {error}. Pass "
                    f"arguments that pickle, or build the object inside init."
                ) from error
            if pickler.fork_only:
                return name
    finally:
        mp_context.set_spawning_popen(previous)
    return None


class _TrialStart:
    """Stands in for a worker's start while ``Pool()`` tries the pickling: the primitives
    that pickle only while a process starts pickle as they will then. (What holds a fd
    never reaches its reducer here: see ``_Pickler.persistent_id``.)"""


class _TrialPickler(_Pickler):
    """Notes, instead of failing on, the locks and semaphores only fork can share."""

    def __init__(self, file: io.BytesIO, protocol: int) -> None:
        super().__init__(file, protocol=protocol)
        self.fork_only = False

    def reducer_override(self, obj: Any) -> Any:
        # A semaphore made by the fork context is unlinked at once: it has no name.
        if isinstance(obj, SemLock) and obj._semlock.name is None:  # type: ignore[attr-defined]
            self.fork_only = True
            return (type(None), ())
        return super().reducer_override(obj)
