"""minipool: a task-distribution microframework for Python batch jobs.

A process pool that is a ``concurrent.futures.Executor``: per-worker ``init``
and teardown, a lazy bounded ``map``, and exactly one outcome for every job,
even when a worker dies.
"""

from ._errors import InitError as InitError
from ._errors import PoolError as PoolError
from ._errors import RemoteError as RemoteError
from ._errors import RemoteTraceback as RemoteTraceback
from ._errors import TaskTimeout as TaskTimeout
from ._errors import WorkerCrashed as WorkerCrashed

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from ._context import stop_requested as stop_requested
    from ._context import worker_state as worker_state
    from ._logging import get_logger as get_logger
    from ._pool import Pool as Pool
    from ._sharing import Shared as Shared
    from ._stats import PoolStats as PoolStats
del TYPE_CHECKING

__all__ = [
    "InitError",
    "Pool",
    "PoolError",
    "PoolStats",
    "RemoteError",
    "RemoteTraceback",
    "Shared",
    "TaskTimeout",
    "WorkerCrashed",
    "get_logger",
    "stop_requested",
    "worker_state",
]

__version__ = "0.1.0"

# Loaded on first use, not with minipool, as concurrent.futures does with
# ProcessPoolExecutor: the pool's modules (and multiprocessing under them)
# take longer to load than all of concurrent.futures.process, and a
# command-line tool that only parses its arguments, or only names minipool's
# errors, never needs them (see benchmarks/bench_import.py).
_LAZY = {
    "Pool": "._pool",
    "PoolStats": "._stats",
    "Shared": "._sharing",
    "get_logger": "._logging",
    "stop_requested": "._context",
    "worker_state": "._context",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'minipool' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    value.__module__ = "minipool"
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


for _error in (InitError, PoolError, RemoteError, RemoteTraceback, TaskTimeout, WorkerCrashed):
    _error.__module__ = "minipool"
del _error
