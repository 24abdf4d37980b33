"""``minipool.Pool``: the caller's side of the pool."""

from __future__ import annotations

import multiprocessing
import os
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import cloudpickle

from . import _exits
from ._backends import Backend, dask_backend
from ._backends.processes import Master
from ._checks import check_positive, check_seconds
from ._logging import check_log_level
from ._map import map_jobs
from ._pickling import PROTOCOL, dumps_function
from ._stats import PoolStats
from ._tasks import JobReceiver, Task

P = ParamSpec("P")
T = TypeVar("T")

# Python 3.14 made forkserver the default on Linux for the reason we do:
# forking a process that runs threads (the master thread, the caller's own)
# can copy a lock some thread holds and deadlock the child. macOS cannot fork
# safely at all, so it gets spawn, as multiprocessing does there.
DEFAULT_START_METHOD = "forkserver" if sys.platform == "linux" else "spawn"


class Pool(Executor):
    """A pool of worker processes; a ``concurrent.futures.Executor``.

    ``workers`` processes (one per CPU by default) each run ``init(*init_args)``
    once before their first job; what it returns (or, for a generator
    function, yields) is the worker's state, read in jobs with
    ``minipool.worker_state()``. A generator ``init`` resumes after its
    ``yield`` when the worker exits: the place to close connections and files.

    ``start_method`` is ``"fork"``, ``"spawn"`` or ``"forkserver"``; the default
    is forkserver on Linux and spawn elsewhere (see ``DEFAULT_START_METHOD``).
    ``max_tasks_per_worker`` replaces a worker after it has run that many jobs;
    ``max_worker_memory`` (bytes), between jobs, once its resident memory passes
    that (a leaking C extension, a growing cache). Either way its teardown runs.
    ``task_timeout`` (seconds) fails a job that runs longer with ``TaskTimeout``
    and replaces its worker; a job waiting in a queue has not started its clock.
    ``retries``: a job that raised, crashed its worker or timed out runs again,
    on any worker, up to that many times before its last error is reported.

    What jobs log with ``minipool.get_logger()`` or the ``logging`` module
    reaches this process, each event before its job's result: through this
    process's structlog and ``logging`` configuration, or, given
    ``log_sink``, as one event dict per call to it (from the pool's thread;
    it should return quickly). Workers ship only the levels this process's
    configuration lets through, as it stands when each worker starts, or,
    given ``log_level`` (``logging.INFO``, ``"debug"``...), that level and up.

    ``cluster`` runs the jobs on a Dask distributed cluster instead (the
    ``cluster`` extra): a scheduler address (``"tcp://host:8786"``), a
    ``distributed.Client``, or ``"local"`` for ``workers`` Dask worker
    processes on loopback that the pool starts and stops. ``init`` then runs
    once per Dask worker process; ``start_method``, ``max_tasks_per_worker``
    and ``max_worker_memory`` are the cluster's business (README: "On a Dask
    cluster" says what else differs).
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        init: Callable[..., Any] | None = None,
        init_args: Iterable[Any] = (),
        start_method: str | None = None,
        max_tasks_per_worker: int | None = None,
        max_worker_memory: int | None = None,
        task_timeout: float | None = None,
        retries: int = 0,
        log_sink: Callable[[dict[str, Any]], object] | None = None,
        log_level: int | str | None = None,
        cluster: Any = None,
    ) -> None:
        if workers is not None or cluster is None or cluster == "local":
            workers = _cpu_count() if workers is None else workers
            check_positive("workers", workers, "for one per CPU")
        if max_tasks_per_worker is not None:
            check_positive("max_tasks_per_worker", max_tasks_per_worker, "to never recycle")
        if max_worker_memory is not None:
            check_positive("max_worker_memory", max_worker_memory, "for no limit")
        if task_timeout is not None:
            check_seconds("task_timeout", task_timeout)
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise ValueError(f"retries must be a whole number, 0 or more, got {retries!r}")
        if log_sink is not None and not callable(log_sink):
            raise TypeError(
                f"log_sink must be a callable that takes each worker event dict, got {log_sink!r}"
            )
        options: dict[str, Any] = {
            "init": _pickle_init(init, init_args),
            "task_timeout": task_timeout,
            "retries": retries,
            "log_sink": log_sink,
            "log_level": check_log_level(log_level),
        }
        self._backend = _start_backend(
            cluster,
            options,
            workers=workers,
            start_method=start_method,
            max_tasks_per_worker=max_tasks_per_worker,
            max_worker_memory=max_worker_memory,
        )
        # A pool that is dropped without shutdown() still finishes its jobs and exits.
        weakref.finalize(self, self._backend.shutdown, wait=False, cancel_pending=False)
        _exits.register(self._backend)

    @property
    def workers(self) -> int:
        """How many worker processes the pool keeps running (on a Dask cluster: how many
        worker threads the cluster had when the pool started)."""
        return self._backend.workers

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` in a worker; return its ``Future``.

        Arguments are pickled here, so one that cannot be pickled raises
        ``TypeError`` at once.
        """
        if not callable(fn):
            raise TypeError(f"submit() needs a callable as fn, got {fn!r}")
        future: Future[T] = Future()
        first = self._backend.reserve_job_ids(1)
        try:
            task = Task(
                first,
                dumps_function(fn),
                [args],
                True,
                kwargs or None,
                JobReceiver(future),
                timeout=self._backend.task_timeout,
            )
        except Exception as error:
            raise TypeError(
                f"cannot send {_name(fn)} and its arguments to a worker: {error}. Pass picklable "
                "arguments, or create the unpicklable object inside the job or in init."
            ) from error
        self._backend.enqueue([task])
        return future

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        ordered: bool = True,
        return_exceptions: bool = False,
        progress: bool = False,
        task_timeout: float | None = None,
    ) -> Iterator[T]:
        """``fn`` over the items of ``iterables`` (zipped, shortest wins), lazily.

        Input is read only as workers free up, so memory stays bounded even
        for an endless generator. ``chunksize=None`` sizes chunks from measured
        job times. ``ordered=False`` yields results as they complete.
        ``return_exceptions=True`` yields a failed job's exception in place of
        its result instead of raising it. ``timeout`` counts from this call,
        as in ``Executor.map``. ``progress=True`` draws a tqdm bar on stderr.
        ``task_timeout`` (seconds) applies to each job of this map, in place of
        the pool's.
        """
        return map_jobs(
            self,
            self._backend,
            fn,
            iterables,
            timeout=timeout,
            chunksize=chunksize,
            ordered=ordered,
            return_exceptions=return_exceptions,
            progress=progress,
            task_timeout=task_timeout,
        )

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Accept no more jobs; finish those accepted (or cancel those not started).

        Workers run their teardown and exit. With ``wait=False`` this returns at
        once and the pool cleans up in the background.
        """
        self._backend.shutdown(wait=wait, cancel_pending=cancel_futures)

    def stop(self) -> None:
        """Stop soon: workers finish the job in hand, tear down and exit.

        Jobs not started are cancelled; ``minipool.stop_requested()`` turns
        true inside running jobs. Returns at once; ``shutdown()`` waits.
        """
        self._backend.stop()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Wait for the jobs, as ``shutdown()`` does; on Ctrl-C or SystemExit, ``stop()``."""
        if exc_type is not None and issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            _exits.leave(self._backend)
        else:
            self.shutdown(wait=True)

    @property
    def stats(self) -> PoolStats:
        """A snapshot of the pool's counters."""
        return self._backend.stats()


def _start_backend(cluster: Any, options: dict[str, Any], **process_options: Any) -> Backend:
    """The process pool's master, or with ``cluster`` the Dask backend."""
    if cluster is not None:
        _check_cluster_options(cluster, **process_options)
        return dask_backend(cluster, workers=process_options["workers"], **options)
    return Master(
        workers=process_options["workers"],
        start_method=_check_start_method(process_options["start_method"]),
        max_tasks_per_worker=process_options["max_tasks_per_worker"],
        max_worker_memory=process_options["max_worker_memory"],
        **options,
    )


def _check_cluster_options(cluster: Any, **options: Any) -> None:
    """Refuse the options that only the process pool has, saying what Dask offers instead."""
    instead = {
        "workers": "the cluster decides how many workers it has (pass workers only "
        'with cluster="local")',
        "start_method": "Dask starts its own worker processes",
        "max_tasks_per_worker": "give `dask worker` a --lifetime to recycle workers",
        "max_worker_memory": "give `dask worker` a --memory-limit",
    }
    for name, value in options.items():
        if value is not None and not (name == "workers" and cluster == "local"):
            raise ValueError(f"{name} cannot be used with cluster={cluster!r}: {instead[name]}")


def _check_start_method(method: str | None) -> str:
    available = multiprocessing.get_all_start_methods()
    if method is None:
        return DEFAULT_START_METHOD if DEFAULT_START_METHOD in available else available[0]
    if method not in available:
        raise ValueError(
            f"start_method must be one of {', '.join(map(repr, available))} on this "
            f"platform, got {method!r}"
        )
    return method


def _pickle_init(init: Any, init_args: Any) -> bytes | None:
    if init is None:
        return None
    if not callable(init):
        raise TypeError(f"init must be a callable run once in each worker, got {init!r}")
    if isinstance(init_args, (str, bytes)) or not isinstance(init_args, Iterable):
        raise TypeError(f"init_args must be a tuple of arguments for init, got {init_args!r}")
    try:
        return cloudpickle.dumps((init, tuple(init_args)), protocol=PROTOCOL)  # type: ignore[no-any-return]
    except Exception as error:
        raise TypeError(
            f"cannot send init {_name(init)} and init_args to the workers: {error}"
        ) from error


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)
