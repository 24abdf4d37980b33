"""The Dask backend: ``Pool(cluster=...)`` runs its jobs on a Dask distributed cluster.

  caller threads              DaskBackend (caller's process)        Dask scheduler and workers
  ──────────────              ──────────────────────────────        ──────────────────────────
  Pool.submit / Pool.map
    pickle a chunk (Task)
    enqueue ─────────────────► client.submit(run_task, chunk) ────► a worker thread runs it
                                _in_flight[key] = (future, task)     (see dask_worker)
  Future / map chunk ◄── Ledger.settle ◄─┐
  log_sink / logging ◄── LogRouter ◄─────┴─ _on_done, in Dask's ◄── (logs, Outcome)
                                            callback thread      ◄── KilledWorker: the worker
                                                                      died mid-job
  Pool.stop()   ──────────────► client.run(request_stop) ─────────► stop_requested() is true
  Pool.shutdown ──────────────► (once nothing is in flight)
  log_sink / logging ◄──────── client.run(tear_down) ─────────────► init's teardown
                                client.unregister_worker_plugin

Dask does the distribution: its scheduler places each task, and minipool adds
no transport and opens no listener of its own. A map stays bounded because
``_map`` submits a chunk only as one finishes, never ``client.map`` over the
whole input. Every outcome comes back through ``Ledger``, as on the process
pool, so errors, ``retries`` and ``stats`` mean the same.

Worker deaths. A task whose worker died comes back as ``KilledWorker`` once
Dask stops re-running it (``distributed.scheduler.allowed-failures``: 3 by
default on a cluster of your own, 0 on ``"local"``, where ``retries`` alone
decides). A one-job task then gets ``WorkerCrashed``; the jobs of a bigger one
run again alone, so that the next death pins down the job that causes it. On
``"local"`` each worker holds one task at a time (``worker-saturation`` 1.0),
so a death is blamed on the job that ran, not on one queued behind it.

Timeouts. A job that overruns ``task_timeout`` is reported by its worker (see
``dask_worker._execute_timed``) and its worker restarted through its nanny;
a task killed by that restart did nothing wrong and runs again, unblamed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from typing import Any, TypeVar

import dask
from dask.utils import parse_timedelta
from distributed import Client, LocalCluster
from distributed import Future as DaskFuture
from distributed.scheduler import KilledWorker

from .. import _by_value as by_value
from .. import _exits
from .._errors import INIT_ADVICE, InitError, PoolError, WorkerCrashed
from .._logging import LogRouter, worker_levels
from .._options import PoolOptions, name_of
from .._sharing import Shared, scattered
from .._tasks import Task
from .base import BackendBase
from .dask_worker import WorkerSetup, request_stop, run_task, started_topic, tear_down

# The local cluster: Dask's re-runs of a task whose worker died would come
# before (and on top of) the pool's `retries`; and with one task per worker
# thread, the task that was running is the one a death is blamed on.
LOCAL_CLUSTER_CONFIG = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.scheduler.worker-saturation": 1.0,
}
# A map chunk's work: a task costs a scheduler round trip and a fetch of its
# result (milliseconds; microseconds on the process pool), so chunks run 10x
# longer than there to keep that a few percent.
CHUNK_SECONDS = 0.1
# How long to wait for a scheduler that does not answer (or, once lost, to
# come back), unless Dask's own ``distributed.comm.timeouts.connect`` is
# shorter: Dask's default of 30 s is long for an address with a typo.
CONNECT_TIMEOUT_SECONDS = 10
STOPPED = "the pool was stopped before this job ran"
CANCELLED = "the pool was stopped or shut down before this job ran"


T = TypeVar("T")


class DaskBackend(BackendBase):
    """Runs a pool's tasks on a Dask cluster; see the module docstring."""

    max_tasks_per_worker = None
    chunk_seconds = CHUNK_SECONDS
    # A task's results come back when it ends: chunks never grow past CHUNK_SECONDS.
    longest_chunk_seconds = CHUNK_SECONDS

    def __init__(self, options: PoolOptions) -> None:
        super().__init__(options, self._submit)
        self._client, self._owned = _connect(options.cluster, options.workers)
        self._name = f"minipool-{uuid.uuid4().hex}"  # of the plugin, and the pool on workers
        self._logs = LogRouter(options.log_sink)
        self._idle = threading.Condition(self._lock)  # notified when _in_flight empties
        self._in_flight: dict[str, tuple[DaskFuture[Any], Task]] = {}
        self._restarted: set[str] = set()  # addresses of workers restarted for a timeout
        self._restarting: list[threading.Thread] = []
        self._stopped = False
        # Keys of the tasks a worker has started (see dask_worker.run_task),
        # until they are settled.
        self._started: set[str] = set()
        # Jobs that ran again because their worker died before they said they
        # had started: once only, since a job that kills its worker at once
        # may never get to say it.
        self._rerun_unstarted: set[int] = set()
        self._revoked: set[str] = set()  # keys of tasks cancelled for their callers
        # The data of the live ``Shared`` objects, by key: every task depends on
        # it, so that Dask puts it on a task's worker before the task runs.
        self._shared: dict[str, DaskFuture[Any]] = {}
        try:
            self._client.subscribe_topic(started_topic(self._name), self._on_started)
            self._start_workers(_pickled_init(options), options.log_level)
            self.workers = max(1, sum(self._client.nthreads().values()))
        except BaseException:
            self._disconnect()
            raise
        _exits.register(self)

    def _start_workers(self, init: bytes | None, log_level: int | None) -> None:
        plugin = WorkerSetup(self._name, init, worker_levels(log_level))
        try:
            self._client.register_plugin(plugin, name=self._name)
        except Exception as cause:
            with contextlib.suppress(Exception):
                self._client.unregister_worker_plugin(self._name)
            error = InitError(
                f"init failed on a Dask worker: {type(cause).__name__}: {cause}. {INIT_ADVICE}"
            )
            raise error from cause

    # ---- called from caller threads ------------------------------------------------

    @property
    def stop_requested(self) -> bool:
        return self._stopped

    def crash_safe_jobs(self) -> int | None:
        return None  # a dead worker's chunk runs again job by job (see _on_killed)

    def enqueue(self, tasks: list[Task]) -> None:
        with self._lock:
            self._admit(tasks)
        self._submit(tasks)

    def share(self, value: T) -> Shared[T]:
        shared, future = scattered(value, self._client, self._unshare)
        with self._lock:
            self._shared[future.key] = future
        return shared

    def _unshare(self, key: str) -> None:
        with self._lock:
            self._shared.pop(key, None)

    def shutdown(self, *, wait: bool, cancel_pending: bool) -> None:
        if self.disowned:
            return  # a forked child: the client and its cluster are its parent's
        with self._lock:
            first = not self._closing
            self._closing = True
            unstarted = [
                future for key, (future, _) in self._in_flight.items() if key not in self._started
            ]
        if cancel_pending and unstarted:
            # Those not known to have started: one that starts as this goes out
            # runs on its worker, and its outcome is dropped (see README).
            with contextlib.suppress(Exception):
                self._client.cancel(unstarted)
        if first:
            threading.Thread(target=self._close, name="minipool-dask-close", daemon=True).start()
        if wait and threading.current_thread().name.startswith("Dask-Callback"):
            return  # a done-callback waiting here would wait for itself
        if wait:
            self._done.wait()

    def stop(self) -> None:
        if self.disowned:
            return
        self._stopped = True
        # Workers first: from then on a task that starts runs nothing (see
        # dask_worker.run_task), even one whose cancellation below comes late.
        with contextlib.suppress(Exception):
            self._client.run(request_stop, self._name)
        self.shutdown(wait=False, cancel_pending=True)

    def kill_workers(self) -> None:
        """At interpreter exit: close a local cluster now; never touch a cluster of the user's."""
        self._disconnect()

    def _running_jobs(self) -> int:
        with self._lock:
            in_flight = self._in_flight.items()
            return sum(task.size for key, (_, task) in in_flight if key in self._started)

    def _workers_alive(self) -> int:
        if self._done.is_set():
            return 0
        try:
            return len(self._client.nthreads())
        except Exception:  # the scheduler went away
            return 0

    # ---- submitting and settling ---------------------------------------------------

    def _submit(self, tasks: list[Task]) -> None:
        for task in tasks:
            # A timed job goes alone: its worker reports it overrunning by itself.
            for piece in task.pieces(1) if task.timeout is not None else [task]:
                if self._stopped:  # a retry after stop(): cancelled, as on the process pool
                    piece.receiver.cancel(piece.offset, piece.size, STOPPED)
                elif not piece.receiver.abandoned:
                    self._submit_one(piece)

    def _submit_one(self, task: Task) -> None:
        key = f"minipool-job-{task.first_job_id}-{uuid.uuid4().hex}"
        with self._lock:
            payload = task.frame()[1]
            future = self._client.submit(
                run_task,
                self._name,
                payload,
                task.first_job_id,
                task.size,
                task.timeout,
                *self._shared.values(),
                key=key,
                pure=False,
            )
            self._in_flight[key] = (future, task)
        future.add_done_callback(self._on_done)
        if not task.receiver.place(_DaskPlacement(self, key, future)):
            self._revoke(key, future)  # cancelled while it was being submitted

    def _on_started(self, event: tuple[float, str]) -> None:
        """A worker started the task ``event[1]`` (in the client's event loop)."""
        with self._lock:
            if event[1] in self._in_flight:
                self._started.add(event[1])

    def _has_started(self, key: str) -> bool:
        return key in self._started

    def _revoke(self, key: str, future: DaskFuture[Any]) -> bool:
        """Cancel the task unless a worker said it started it."""
        if key in self._started:
            return False
        self._revoked.add(key)
        with contextlib.suppress(Exception):
            self._client.cancel([future])
        return True

    def _on_done(self, future: DaskFuture[Any]) -> None:
        """A task ended (Dask's callback thread): settle its jobs.

        It stays in ``_in_flight`` until settled, so that ``_close`` never sees
        the pool idle while a retry of its jobs is still to be submitted.
        """
        key = str(future.key)
        with self._lock:
            _, task = self._in_flight[key]
            started = key in self._started
        try:
            self._settle(future, task, started)
        finally:
            with self._lock:
                del self._in_flight[key]
                self._started.discard(key)
                self._revoked.discard(key)
                if not self._in_flight:
                    self._idle.notify_all()

    def _settle(self, future: DaskFuture[Any], task: Task, started: bool) -> None:
        try:
            worker, address, pid, logs, outcomes, overran = future.result()
        except KilledWorker as error:
            self._on_killed(task, error, started)
            return
        except BaseException as error:  # cancelled; or the scheduler went away, say
            if future.cancelled() and (self._closing or str(future.key) in self._revoked):
                task.receiver.cancel(task.offset, task.size, CANCELLED)
            else:
                self._ledger.fail(task, _dask_failed(task, error))
            return
        if overran:
            self._restart(address)
        self._logs.deliver(worker, pid, logs)
        done = 0
        for outcome in outcomes:
            self._ledger.settle(task, outcome, outcome.nbytes)
            done += outcome.size
        if done < task.size:  # stop() ended the chunk between two jobs
            task.receiver.cancel(task.offset + done, task.size - done, STOPPED)

    def _on_killed(self, task: Task, error: KilledWorker, started: bool) -> None:
        address = getattr(error.last_worker, "address", str(error.last_worker))
        if not started and task.first_job_id not in self._rerun_unstarted:
            # Its worker died before it said it had started: it was not
            # running, but waiting there (on a cluster whose workers hold more
            # than they run); it goes again, unblamed.
            self._rerun_unstarted.add(task.first_job_id)
            self._submit([task])
            return
        if address in self._restarted or task.size > 1:
            # Innocent (its worker was restarted under it), or which of its
            # jobs killed the worker is unknown: run them again, each alone.
            self._submit(task.pieces(1))
            return
        self._restarts += 1
        crash = WorkerCrashed(
            f"the Dask worker {address} died while running job {task.first_job_id} (Dask: "
            "KilledWorker; often the OOM killer or a crash in C code). Dask replaces its "
            "workers; see that worker's log for why it died.",
            job_id=task.first_job_id,
        )
        self._ledger.finish(task, [None], {0: crash})

    def _restart(self, address: str) -> None:
        """Replace a worker whose job overran (a thread cannot be stopped, a process can)."""
        self._restarted.add(address)
        self._restarts += 1
        restart = threading.Thread(
            target=self._restart_quietly, args=(address,), name="minipool-dask-restart"
        )
        restart.start()
        self._restarting.append(restart)

    def _restart_quietly(self, address: str) -> None:
        with contextlib.suppress(Exception):  # a worker without a nanny cannot restart
            self._client.restart_workers([address], raise_for_error=False)

    # ---- closing -------------------------------------------------------------------

    def _close(self) -> None:
        with self._idle:
            while self._in_flight:
                self._idle.wait()
        for restart in self._restarting:  # done before the client they use goes
            restart.join()
        with contextlib.suppress(Exception):  # a worker gone: its teardown ran as it closed
            for worker, pid, logs in self._client.run(tear_down, self._name).values():
                self._logs.deliver(worker, pid, logs)
        with contextlib.suppress(Exception):
            self._client.unregister_worker_plugin(self._name)
        with contextlib.suppress(Exception):
            self._client.unsubscribe_topic(started_topic(self._name))
        self._disconnect()
        self._done.set()

    def _disconnect(self) -> None:
        for owned in self._owned:
            with contextlib.suppress(Exception):
                owned.close()


class _DaskPlacement:
    """Where a task waits, on Dask: in the scheduler, or on a worker that has not said it
    started it (see ``_tasks.Placement``)."""

    __slots__ = ("_backend", "_future", "_key")

    def __init__(self, backend: DaskBackend, key: str, future: DaskFuture[Any]) -> None:
        self._backend = backend
        self._key = key
        self._future = future

    def started(self) -> bool:
        return self._backend._has_started(self._key)

    def revoke(self) -> bool:
        return self._backend._revoke(self._key, self._future)


def _connect_timeout() -> float:
    configured = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"))
    return min(float(CONNECT_TIMEOUT_SECONDS), float(configured))


def _connect(cluster: Any, workers: int | None) -> tuple[Client, list[Any]]:
    """A client for ``cluster``, and what minipool made (and so closes), client first."""
    if isinstance(cluster, Client):
        return cluster, []
    if cluster == "local":
        try:
            local = start_local_cluster(workers)
        except Exception as error:
            raise RuntimeError(
                f"could not start a local Dask cluster ({error}) Its workers are new Python "
                "processes that import your main module: if your script makes the pool at "
                'import time, put that under `if __name__ == "__main__":`.'
            ) from error
        client = Client(local, set_as_default=False)
        return client, [client, local]
    if not isinstance(cluster, str):
        raise TypeError(
            "cluster must be a Dask scheduler address such as 'tcp://10.0.0.5:8786', a "
            f"distributed.Client, or 'local' for a cluster on this machine; got {cluster!r}"
        )
    try:
        client = Client(cluster, set_as_default=False, timeout=_connect_timeout())
    except OSError as error:
        raise OSError(
            f"could not connect to the Dask scheduler at {cluster!r}: {error}. Start one with "
            "`dask scheduler` (and workers with `dask worker ADDRESS`), or check the address."
        ) from error
    return client, [client]


def start_local_cluster(workers: int | None) -> LocalCluster:
    """The cluster of ``cluster="local"``: ``workers`` processes of one thread, on loopback."""
    with dask.config.set(LOCAL_CLUSTER_CONFIG):
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",  # nothing outside this machine can reach it
            dashboard_address=None,
            # Its HTTP server (health checks, metrics) runs even without a
            # dashboard: a free port on loopback, not 8787 on whatever is there.
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.CRITICAL,  # its failures reach the caller as errors
        )


def _dask_failed(task: Task, error: BaseException) -> PoolError:
    last = task.first_job_id + task.size - 1
    failure = PoolError(
        f"Dask could not run jobs {task.first_job_id}..{last}: {type(error).__name__}: "
        f"{error}. Check that the cluster is up and that its workers have minipool installed."
    )
    failure.__cause__ = error
    return failure


def _pickled_init(options: PoolOptions) -> bytes | None:
    """``(init, init_args)`` pickled by value, for a plugin that travels to the cluster."""
    if options.init is None:
        return None
    try:
        return by_value.dumps((options.init, options.init_args))
    except Exception as error:
        raise TypeError(
            f"cannot send init {name_of(options.init)} and init_args to the Dask workers: "
            f"{error}. Pass arguments that pickle (multiprocessing's queues, locks and "
            f"shared values reach only processes this machine starts), or build the "
            f"object inside init."
        ) from error
