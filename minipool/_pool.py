"""``minipool.Pool``: the caller's side of the pool."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from . import _exits
from ._backends import start_backend
from ._map import map_jobs
from ._open_maps import OpenMaps
from ._options import check_options, name_of, one_spelling, start_method_of
from ._pickling import dumps_function
from ._sharing import Shared
from ._stats import PoolStats
from ._tasks import JobFuture, JobReceiver, Task

P = ParamSpec("P")
T = TypeVar("T")


class Pool(Executor):
    """A pool of worker processes; a ``concurrent.futures.Executor``.

    ``workers`` processes (one per CPU by default) each run ``init(*init_args)``
    once before their first job; what it returns (or, for a generator
    function, yields) is the worker's state, read in jobs with
    ``minipool.worker_state()``. A generator ``init`` resumes after its
    ``yield`` when the worker exits: the place to close connections and files.

    ``start_method`` is ``"fork"``, ``"spawn"`` or ``"forkserver"``; the default
    is forkserver on Linux and spawn elsewhere, or fork where only fork works (a
    ``__main__`` that is no file or has no main guard, fork-made primitives in
    ``init_args``: see ``_backends.processes.start_method``).
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

    ``ProcessPoolExecutor``'s keywords work too, as synonyms: ``max_workers``
    (``workers``), ``mp_context`` (``start_method``: that context's),
    ``initializer`` and ``initargs`` (``init`` and ``init_args``), and
    ``max_tasks_per_child`` (``max_tasks_per_worker``). Both names of one
    option at once is a ``TypeError``.

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
        max_workers: int | None = None,
        mp_context: Any = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] = (),
        max_tasks_per_child: int | None = None,
    ) -> None:
        workers = one_spelling("workers", workers, "max_workers", max_workers)
        init = one_spelling("init", init, "initializer", initializer)
        init_args = one_spelling("init_args", init_args, "initargs", initargs, unset=())
        max_tasks_per_worker = one_spelling(
            "max_tasks_per_worker", max_tasks_per_worker, "max_tasks_per_child", max_tasks_per_child
        )
        if mp_context is not None:
            start_method = one_spelling(
                "start_method", start_method, "mp_context", start_method_of(mp_context)
            )
        options = check_options(
            workers,
            init=init,
            init_args=init_args,
            start_method=start_method,
            max_tasks_per_worker=max_tasks_per_worker,
            max_worker_memory=max_worker_memory,
            task_timeout=task_timeout,
            retries=retries,
            log_sink=log_sink,
            log_level=log_level,
            cluster=cluster,
        )
        self._backend = start_backend(options)
        self._open_maps = OpenMaps()  # see _open_maps: no map loses work at shutdown
        # A pool that is dropped without shutdown() still finishes its jobs and exits.
        # Not at interpreter exit, where a pool left open is stopped instead (see _exits).
        finalizer = weakref.finalize(self, self._backend.shutdown, wait=False, cancel_pending=False)
        finalizer.atexit = False

    @property
    def workers(self) -> int:
        """How many worker processes the pool keeps running (on a Dask cluster: how many
        worker threads the cluster had when the pool started)."""
        return self._backend.workers

    @property
    def _max_workers(self) -> int:
        """``workers``, under the private name that tools built on ``ProcessPoolExecutor``
        read (dask's ``scheduler="processes"`` with ``dask.config.set(pool=...)``)."""
        return self.workers

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` in a worker; return its ``Future``.

        Arguments are pickled here, so one that cannot be pickled raises
        ``TypeError`` at once.
        """
        if not callable(fn):
            raise TypeError(f"submit() needs a callable as fn, got {fn!r}")
        future: JobFuture[T] = JobFuture()
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
                segments=self._backend.segments,
            )
            task.frame()
        except Exception as error:
            raise TypeError(
                f"cannot send {name_of(fn)} and its arguments to a worker: {error}. Pass "
                "picklable arguments, or create the unpicklable object inside the job or in init."
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
            open_maps=self._open_maps,
        )

    def share(self, obj: T) -> Shared[T]:
        """Put ``obj`` once into shared memory for many jobs: a ``Shared`` anywhere in a
        job's arguments arrives in the job as ``obj`` itself.

        numpy arrays (and any buffer pickle passes out of band) arrive as read-only
        views of the same pages in every worker, copied nowhere; the rest of ``obj`` is
        unpickled once per worker and kept. ``shared.release()`` frees it; shutdown frees
        every one. On a Dask cluster it is scattered to every worker (each job gets its
        worker's copy); where there is no /dev/shm, each job gets a copy of its own.
        """
        if self._backend.closing:
            raise RuntimeError(
                "cannot share() on a pool that was shut down or stopped; create a new minipool.Pool"
            )
        return self._backend.share(obj)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Accept no more jobs; finish those accepted (or cancel those not started).

        Workers run their teardown and exit. With ``wait=False`` this returns at
        once and the pool cleans up in the background; the jobs accepted still
        run, even at interpreter exit. Ctrl-C (or SIGTERM) while this waits
        stops the pool, as in a ``with`` block.
        """
        try:
            if not self._backend.disowned:  # a forked child: the maps are its parent's
                self._open_maps.finish(wait and not cancel_futures)
            self._backend.shutdown(wait=wait, cancel_pending=cancel_futures)
        except (KeyboardInterrupt, SystemExit):
            _exits.leave(self._backend)
            raise

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
