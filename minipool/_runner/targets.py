"""What the runner's command line points at: ``module:function`` or ``file.py:function``."""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any


class UsageError(Exception):
    """A bad command line, target or input: exit 2 with this one-line message."""


def load_target(spec: str, option: str) -> Callable[..., Any]:
    """``package.module:function`` or ``path/to/file.py:function``, imported."""
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise UsageError(
            f"{option} must look like package.module:function or path/to/file.py:function, "
            f"got {spec!r}"
        )
    module = _import_file(where) if where.endswith(".py") else _import_module(where)
    try:
        target = functools.reduce(getattr, name.split("."), module)
    except AttributeError:
        raise UsageError(f"{option}: {where} has no {name!r}") from None
    if not callable(target):
        raise UsageError(f"{option}: {spec} is a {type(target).__name__}, not a function")
    return target  # type: ignore[no-any-return]


def _import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name and name.startswith(error.name):
            raise UsageError(f"cannot import {name}: no module named {error.name!r}") from None
        raise UsageError(f"importing {name} failed: {_one_line(error)}") from None
    except Exception as error:
        raise UsageError(f"importing {name} failed: {_one_line(error)}") from None


def _import_file(path: str) -> Any:
    """Import a file as a module named after it, with its directory first on sys.path.

    As ``python path/to/file.py`` would, so that it can import its neighbours;
    and workers, which share sys.path, import it by the same name.
    """
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    directory, stem = os.path.split(os.path.abspath(path[:-3]))
    loaded = sys.modules.get(stem)
    if loaded is not None and os.path.abspath(getattr(loaded, "__file__", "") or "") != (
        os.path.abspath(path)
    ):
        raise UsageError(f"{path} is named like the module {stem!r}; rename the file")
    if directory not in sys.path:
        sys.path.insert(0, directory)
    return _import_module(stem)


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0]
