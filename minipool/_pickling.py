"""Turning jobs, results and exceptions into bytes and back.

Plain ``pickle`` does nearly all of it: it is the fast path. ``cloudpickle``
is used only for what ``pickle`` cannot carry, functions by value: lambdas,
closures, and anything defined in ``__main__`` (which a spawned worker may not
be able to import).
"""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

from ._errors import RemoteError, RemoteTraceback
from ._messages import ErrorInfo
from ._segment_maps import SEGMENT_TAG, open_value
from ._segments import OUT_OF_BAND_MIN_BYTES, SegmentDir

PROTOCOL = pickle.HIGHEST_PROTOCOL

dumps = pickle.dumps
loads = pickle.loads


def dumps_value(value: Any, segments: SegmentDir | None = None) -> bytes:
    """Pickle a chunk's arguments in the caller, a result or an exception in a worker.

    With ``segments``, the large buffers ``value`` offers out of band (numpy
    arrays, ``PickleBuffer``, memoryviews...) go into a shared memory segment,
    and the pickle names it (see ``_segments``); ``loads_value`` reads either kind.

    Plain pickle, or cloudpickle for what only it can carry: a lambda or a
    closure among the arguments (dask's tasks are tuples of them), or an
    instance of a class from the caller's ``__main__``, which the worker has
    as its own copy, sent by value along with the function. cloudpickle tags
    such a class so that the caller gets its own class back. The fast path
    pays nothing for the fallback: a ``try`` costs nothing until it raises.
    """
    if segments is None:
        return _dumps(value, None)
    large = _LargeBuffers()
    data = _dumps(value, large)
    if not large.buffers:
        return data
    try:
        return segments.write(large.buffers) + data
    except OSError:  # /dev/shm is full, or the pool is gone: through the pipe, then
        return _dumps(value, None)


def _dumps(value: Any, buffer_callback: _LargeBuffers | None) -> bytes:
    try:
        return pickle.dumps(value, protocol=PROTOCOL, buffer_callback=buffer_callback)
    except Exception:
        if buffer_callback is not None:
            buffer_callback.buffers.clear()  # what the failed attempt set aside
        return _dumps_by_value(value, buffer_callback)


def dumps_out_of_band(value: Any) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """``value`` pickled with every buffer it offers out of band, and those buffers."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        return pickle.dumps(value, PROTOCOL, buffer_callback=buffers.append), buffers
    except Exception:
        buffers.clear()
        return _dumps_by_value(value, buffers.append), buffers


class _LargeBuffers:
    """A ``buffer_callback`` that keeps the large buffers out of band, the rest in the pickle."""

    __slots__ = ("buffers",)

    def __init__(self) -> None:
        self.buffers: list[pickle.PickleBuffer] = []

    def __call__(self, buffer: pickle.PickleBuffer) -> bool:
        try:
            size = buffer.raw().nbytes
        except BufferError:  # not contiguous: pickle copies it in band
            return True
        if size < OUT_OF_BAND_MIN_BYTES:
            return True
        self.buffers.append(buffer)
        return False


def loads_value(blob: bytes | memoryview) -> Any:
    """The value ``dumps_value`` pickled, its large buffers mapped from their segment."""
    data, buffers = unwrap(blob)
    return pickle.loads(data, buffers=buffers)


def unwrap(blob: bytes | memoryview) -> tuple[bytes | memoryview, list[memoryview]]:
    """The pickle in ``blob`` and the out-of-band buffers it loads with (none for most)."""
    if blob[0] != SEGMENT_TAG:
        return blob, []
    return open_value(blob)


def dumps_function(fn: Any) -> bytes:
    """Pickle a callable by reference when a worker can import it, by value otherwise."""
    if _defined_in_main(fn):
        return _dumps_by_value(fn)
    try:
        return pickle.dumps(fn, protocol=PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError):
        return _dumps_by_value(fn)


def _dumps_by_value(value: Any, buffer_callback: Callable[[Any], object] | None = None) -> bytes:
    from . import _by_value  # cloudpickle: imported on first use, not with minipool

    return _by_value.dumps(value, buffer_callback)


def rebuild_memoryview(buffer: Any, format: str, shape: tuple[int, ...]) -> memoryview[Any]:
    """A memoryview as ``_by_value`` pickled it: its bytes, then its format and shape."""
    view: memoryview[Any] = memoryview(buffer).cast("B")
    try:
        return view.cast(format, shape)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):  # a format cast() does not take: its bytes, then
        return view


def _defined_in_main(fn: Any) -> bool:
    # Functions, classes and callable instances (through their class) all
    # answer __module__.
    return getattr(fn, "__module__", None) == "__main__"


class FunctionCache:
    """Unpickled functions keyed by their bytes, so a worker unpickles each one once.

    Equal bytes mean the same function (for one pickled by value, the same
    code and the same captured globals), so a hit is always correct.
    """

    # Bounded so that a stream of distinct closures cannot grow a worker forever.
    MAX_ENTRIES = 256

    def __init__(self) -> None:
        self._functions: dict[bytes, Any] = {}

    def load(self, blob: bytes) -> Any:
        fn = self._functions.get(blob)
        if fn is None:
            if len(self._functions) >= self.MAX_ENTRIES:
                self._functions.clear()
            fn = self._functions[blob] = loads(blob)
        return fn


def error_info(error: BaseException) -> ErrorInfo:
    """Describe ``error`` so that it can always be sent, even if it does not pickle."""
    text = _traceback_text(error)
    blob: bytes | None
    try:
        blob = dumps_value(error)
        # An exception whose __init__ takes other arguments than it passes to
        # BaseException pickles fine but fails to unpickle (CPython issue
        # 79492); find that out here rather than in the caller. BaseException:
        # whatever a __reduce__ raises, this error must still be sent.
        loads(blob)
    except BaseException:
        blob = None
    return ErrorInfo(type(error).__qualname__, _safe_str(error), text, blob)


def rebuild_exception(info: ErrorInfo) -> BaseException:
    """The caller-side exception for ``info``, with the worker traceback as ``__cause__``."""
    error: BaseException | None = None
    if info.exception is not None:
        try:
            error = loads(info.exception)
        except BaseException:  # whatever its __reduce__ raises: the job's error, not ours
            error = None
    if not isinstance(error, BaseException):
        error = RemoteError(info.type_name, info.message, info.traceback)
    error.__cause__ = RemoteTraceback(info.traceback)
    return error


# The user's __str__, __repr__ and __reduce__ run below: whatever they raise
# (BaseException included) must leave a description that can be sent.


def _traceback_text(error: BaseException) -> str:
    """The traceback as Python prints it, from the first frame that is not minipool's."""
    frames_from = _from_user_code(error.__traceback__)
    try:
        return "".join(traceback.format_exception(type(error), error, frames_from))
    except BaseException:
        frames = "".join(traceback.format_tb(frames_from))
        last = f"{type(error).__qualname__}: {_safe_str(error)}"
        return f"Traceback (most recent call last):\n{frames}{last}\n"


def _from_user_code(frames: TracebackType | None) -> TracebackType | None:
    """``frames`` less the leading ones of minipool's own modules, which ran the job
    (all of them if the error is minipool's own)."""
    first = frames
    while first is not None and _is_minipool(first.tb_frame.f_globals.get("__name__", "")):
        first = first.tb_next
    return frames if first is None else first


def _is_minipool(module: str) -> bool:
    return module == "minipool" or module.startswith("minipool.")


def _safe_str(error: BaseException) -> str:
    try:
        return str(error)
    except BaseException:
        return f"<str() of the {type(error).__qualname__} failed>"
