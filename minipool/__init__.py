"""minipool: a task-distribution microframework for Python batch jobs.

A process pool that is a ``concurrent.futures.Executor``: per-worker ``init``
and teardown, a lazy bounded ``map``, and exactly one outcome for every job,
even when a worker dies.
"""

from ._context import stop_requested as stop_requested
from ._context import worker_state as worker_state
from ._errors import InitError as InitError
from ._errors import PoolError as PoolError
from ._errors import RemoteError as RemoteError
from ._errors import RemoteTraceback as RemoteTraceback
from ._errors import TaskTimeout as TaskTimeout
from ._errors import WorkerCrashed as WorkerCrashed
from ._logging import get_logger as get_logger
from ._pool import Pool as Pool
from ._stats import PoolStats as PoolStats

__all__ = [
    "InitError",
    "Pool",
    "PoolError",
    "PoolStats",
    "RemoteError",
    "RemoteTraceback",
    "TaskTimeout",
    "WorkerCrashed",
    "get_logger",
    "stop_requested",
    "worker_state",
]

__version__ = "0.1.0"

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or callable(_obj):
        _obj.__module__ = "minipool"
del _name, _obj
