"""Where jobs run: the protocol every backend implements, and how ``Pool`` picks one.

    Pool / map_jobs ──► Backend.enqueue(tasks) ──► processes: processes.Master
                                                   (worker processes of its own)
                   ◄── Task.receiver.deliver   ◄── dask: _backends.dask.DaskBackend
                                                   (a distributed.Client)

Both run a pickled chunk of jobs with ``_execute.execute`` in the process
that runs it (which catches each job's exception, and turns a result that
does not pickle into that job's error), and both settle the outcomes in the
caller with ``_ledger.Ledger`` (exceptions rebuilt, ``retries``, ``stats``):
the code that runs a job and decides its outcome is the same on every backend.
Both keep job ids, the closed-pool guard and the counters the same way
(``base.BackendBase``).

``_backends.dask`` imports ``distributed``; it is imported only when a pool is
given a ``cluster``, so ``import minipool`` works without the ``cluster`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar

from .._options import PoolOptions
from .._segments import SegmentDir
from .._sharing import Shared
from .._stats import PoolStats
from .._tasks import Task

if TYPE_CHECKING:
    from .dask import DaskBackend

T = TypeVar("T")

# minipool is not on the package index: the extra installs from a clone, and
# what it adds is dask[distributed], which installs from anywhere.
INSTALL_CLUSTER_EXTRA = (
    "pip install 'dask[distributed]' (the cluster extra: pip install -e '.[cluster]' "
    "in a clone of minipool)"
)


class Backend(Protocol):
    """What ``Pool`` and ``map`` need from the thing that runs their jobs."""

    @property
    def workers(self) -> int:
        """How many jobs can run at once (worker processes, or Dask worker threads)."""

    @property
    def max_tasks_per_worker(self) -> int | None: ...

    @property
    def chunk_seconds(self) -> float:
        """How long a ``map`` chunk should run: its fixed cost must be small against that."""

    @property
    def longest_chunk_seconds(self) -> float:
        """How long a chunk of a sized input may run when it takes a share of what remains
        (see ``_scheduling.CHUNK_SHARE_DIVISOR``): ``chunk_seconds`` where results wait for
        the end of their chunk."""

    @property
    def task_timeout(self) -> float | None: ...

    def share(self, value: T) -> Shared[T]:
        """``value`` put once where every worker can read it (see ``Pool.share``)."""

    @property
    def segments(self) -> SegmentDir | None:
        """Where large arguments go (see ``_segments``); None: in the pickle, as the rest."""

    @property
    def stop_requested(self) -> bool: ...

    @property
    def running(self) -> bool:
        """Jobs or workers are still being looked after."""

    @property
    def closing(self) -> bool:
        """``shutdown()`` or ``stop()`` was called."""

    @property
    def disowned(self) -> bool:
        """This process was forked from the pool's: it must never touch the pool."""

    def reserve_job_ids(self, count: int) -> int:
        """The first of ``count`` consecutive job ids, never handed out again."""

    def enqueue(self, tasks: list[Task]) -> None:
        """Accept ``tasks``; raise ``RuntimeError`` once shut down, or the pool's breaking error."""

    def crash_safe_jobs(self) -> int | None:
        """How many jobs a chunk should hold, given how often workers die; None: no limit."""

    def shutdown(self, *, wait: bool, cancel_pending: bool) -> None: ...

    def stop(self) -> None: ...

    def join(self, timeout: float | None) -> bool:
        """Wait until ``running`` is false; whether it is."""

    def disown(self) -> None:
        """This process was forked from the pool's: never touch the pool from here."""

    def kill_workers(self) -> None:
        """Last resort at interpreter exit: end whatever runs jobs for this pool now."""

    def stats(self) -> PoolStats: ...


def start_backend(options: PoolOptions) -> Backend:
    """The process pool's master, or with ``options.cluster`` the Dask backend."""
    if options.cluster is not None:
        _check_cluster_options(options)
        return _dask_backend(options)
    from .processes import Master

    return Master(options)


def _check_cluster_options(options: PoolOptions) -> None:
    """Refuse the options that only the process pool has, saying what Dask offers instead."""
    cluster = options.cluster
    instead = {
        "workers": "the cluster decides how many workers it has (pass workers only "
        'with cluster="local")',
        "start_method": "Dask starts its own worker processes",
        "max_tasks_per_worker": "give `dask worker` a --lifetime to recycle workers",
        "max_worker_memory": "give `dask worker` a --memory-limit",
    }
    for name, fix in instead.items():
        value = getattr(options, name)
        if value is not None and not (name == "workers" and cluster == "local"):
            raise ValueError(f"{name} cannot be used with cluster={cluster!r}: {fix}")


def _dask_backend(options: PoolOptions) -> DaskBackend:
    """The Dask backend on ``options.cluster``; without the ``cluster`` extra, say how to
    install it."""
    try:
        from .dask import DaskBackend
    except ImportError as error:
        if (error.name or "").partition(".")[0] not in ("dask", "distributed"):
            raise
        raise ImportError(
            f"Pool(cluster=...) runs jobs on Dask distributed, which is not installed "
            f"({error}). Install it with: {INSTALL_CLUSTER_EXTRA}"
        ) from error
    return DaskBackend(options)
