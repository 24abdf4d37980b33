"""Pickling by value (cloudpickle) that keeps each function's file name.

cloudpickle 3 writes every code object's ``co_filename`` as ``"<dynamic-code>"``,
so that a function pickles to the same bytes wherever it was defined; a
worker's traceback of a function from the caller's ``__main__`` then names no
file and shows no line. This pickler keeps the name: a function's bytes still
stay the same from one call to the next (all ``FunctionCache`` needs), and the
worker's traceback shows the user's file, line and source line, as the stdlib's
pools show them for the functions they import.

Imported on first use (see ``_pickling``): a pool of importable functions
never needs cloudpickle in the caller.
"""

from __future__ import annotations

import io
import pickle
import types
from collections import ChainMap
from collections.abc import Callable
from typing import Any, ClassVar

import cloudpickle
from cloudpickle import cloudpickle as _cloudpickle

from ._pickling import PROTOCOL, rebuild_memoryview

_ANONYMOUS_FILE = "<dynamic-code>"


def _reduce_code(code: types.CodeType) -> tuple[Any, ...]:
    rebuild, args = _cloudpickle._code_reduce(code)
    return rebuild, tuple(
        code.co_filename if isinstance(arg, str) and arg == _ANONYMOUS_FILE else arg for arg in args
    )


def _reduce_memoryview(view: memoryview[Any]) -> tuple[Any, ...]:
    """A memoryview (which pickle refuses) as its bytes, out of band where large, with its
    format and shape: a job may return one, and it arrives as a memoryview."""
    format, shape = view.format, view.shape
    if not view.c_contiguous:  # a copy, as contiguous as PickleBuffer needs
        data = view.tobytes()
        view = memoryview(data if view.readonly else bytearray(data))
    return rebuild_memoryview, (pickle.PickleBuffer(view), format, shape)


class Pickler(cloudpickle.Pickler):  # type: ignore[misc]
    # The registry is cloudpickle's own; code objects and memoryviews are reduced
    # otherwise. Plain pickle comes first (see _pickling), so this costs nothing to
    # values it can pickle.
    dispatch_table: ClassVar[ChainMap[Any, Any]] = ChainMap(
        {types.CodeType: _reduce_code, memoryview: _reduce_memoryview},
        cloudpickle.Pickler.dispatch_table,
    )


def dumps(value: Any, buffer_callback: Callable[[Any], object] | None = None) -> bytes:
    buffer = io.BytesIO()
    Pickler(buffer, protocol=PROTOCOL, buffer_callback=buffer_callback).dump(value)
    return buffer.getvalue()
