"""The Dask backend against a real cluster: a ``dask scheduler`` and two ``dask worker``
processes on loopback, started by Dask's own commands and torn down after the module.

The scheduler runs as ``cluster="local"`` configures its own (environment
variables, as an operator would set them): ``allowed-failures`` 0, so that a
job that kills its worker fails at once instead of killing three more workers
first, and ``worker-saturation`` 1.0, so that a death is blamed on the job that
was running and not on one queued behind it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import multiprocessing
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Callable, Iterator
from itertools import count, islice
from pathlib import Path
from typing import Any

import jobs
import pytest
from helpers import wait_for, wait_for_path

import minipool

# Not imported here, at collection: see conftest.pytest_collection_modifyitems.
# CI installs the cluster extra, so there these tests must run, never skip.
if importlib.util.find_spec("distributed") is None and not os.environ.get("CI"):
    pytest.skip("needs the cluster extra: pip install -e '.[cluster]'", allow_module_level=True)

TESTS = Path(__file__).parent
Popen = subprocess.Popen[bytes]
DASK = shutil.which("dask", path=str(Path(sys.executable).parent)) or "dask"
WORKERS = 2
START_TIMEOUT = 30.0
# Dask's own option, which the pool honours when it is shorter than its 10 s: a
# test that waits out a missing scheduler waits this long.
CONNECT_TIMEOUT = "distributed.comm.timeouts.connect"
SHORT_CONNECT_TIMEOUT = "2s"


def _start(arguments: list[str], log: Path, saturation: str) -> Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        # What cluster="local" sets (see _backends.dask.LOCAL_CLUSTER_CONFIG).
        "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
        "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": saturation,
    }
    with log.open("ab") as output:
        return subprocess.Popen(
            [DASK, *arguments], env=env, stdout=output, stderr=output, start_new_session=True
        )


def _stop(processes: list[Popen]) -> None:
    """SIGTERM each process group (a nanny and its worker), then SIGKILL what is left."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(15)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def dask_cluster(
    directory: Path, workers: int, saturation: str = "1.0"
) -> Iterator[tuple[str, list[Popen]]]:
    """A scheduler and ``workers`` workers started with Dask's commands; stopped, and
    checked gone, at the end. Yields the address and the processes (scheduler first)."""
    scheduler_file = directory / "scheduler.json"
    log = directory / "cluster.log"
    common = ["--host", "127.0.0.1", "--no-dashboard"]
    scheduler = ["scheduler", *common, "--port", "0", "--scheduler-file", str(scheduler_file)]
    processes = [_start(scheduler, log, saturation)]
    try:
        wait_for_path(scheduler_file, START_TIMEOUT)
        assert wait_for(lambda: scheduler_file.stat().st_size > 0, START_TIMEOUT)
        address = json.loads(scheduler_file.read_text())["address"]
        for number in range(workers):
            arguments = ["worker", address, *common, "--nthreads", "1", "--name", f"w{number}"]
            processes.append(_start(arguments, log, saturation))
        with _client(address) as client:
            client.wait_for_workers(workers, timeout=START_TIMEOUT)
        yield address, processes
    finally:
        _stop(processes)
    # A nanny's worker process is in its group, and may outlive the nanny briefly.
    groups = [process.pid for process in processes]
    gone = wait_for(lambda: not any(_group_alive(group) for group in groups), 15)
    leftovers = [group for group in groups if _group_alive(group)]
    for group in leftovers:
        os.killpg(group, signal.SIGKILL)
    assert gone, f"process groups still alive after teardown: {leftovers}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The scheduler's address; the scheduler and its workers run until the module ends."""
    with dask_cluster(tmp_path_factory.mktemp("dask-cluster"), WORKERS) as (address, _):
        yield address


@pytest.fixture
def make_pool(cluster: str) -> Iterator[Callable[..., minipool.Pool]]:
    """``make_pool(**kwargs)``: a Pool on the test cluster, shut down when the test ends."""
    pools: list[minipool.Pool] = []

    def make(**kwargs: Any) -> minipool.Pool:
        pool = minipool.Pool(cluster=cluster, **kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.shutdown(cancel_futures=True)
    # A worker killed by a test comes back through its nanny; the next test needs both.
    with _client(cluster) as client:
        client.wait_for_workers(WORKERS, timeout=START_TIMEOUT)


def _client(address: str) -> Any:
    """A ``distributed.Client`` of the test's own, to inspect the cluster."""
    from distributed import Client

    return Client(address, set_as_default=False)


def _worker_pids(cluster: str) -> set[int]:
    with _client(cluster) as client:
        return set(client.run(os.getpid).values())


# ---- the same API ----------------------------------------------------------------------


def test_submit_runs_on_a_dask_worker(cluster: str, make_pool: Callable[..., minipool.Pool]):
    """submit() returns a Future whose result was computed in a Dask worker process."""
    pool = make_pool()
    assert pool.submit(jobs.square, 7).result(timeout=30) == 49
    assert pool.submit(jobs.getpid).result(timeout=30) in _worker_pids(cluster)
    assert pool.workers == WORKERS


def test_map_ordered_and_unordered(make_pool: Callable[..., minipool.Pool]) -> None:
    """map() gives results in input order, or all of them in completion order."""
    pool = make_pool()
    assert list(pool.map(jobs.square, range(200))) == [x * x for x in range(200)]
    assert list(pool.map(jobs.add, range(50), range(50))) == [2 * x for x in range(50)]
    unordered = list(pool.map(jobs.square, range(200), ordered=False))
    assert sorted(unordered) == [x * x for x in range(200)]


def test_map_over_an_endless_generator_stays_bounded(
    make_pool: Callable[..., minipool.Pool],
) -> None:
    """Taking 100 results of an endless generator reads only a bounded part of it."""
    pool = make_pool()
    pulled = count()

    def endless() -> Iterator[int]:
        for x in count():
            next(pulled)
            yield x

    results = pool.map(jobs.square, endless())
    assert list(islice(results, 100)) == [x * x for x in range(100)]
    results.close()  # type: ignore[attr-defined]
    assert next(pulled) < 10_000  # read ahead: at most _map.MAX_AHEAD plus a chunk


def test_job_exceptions_keep_their_type(make_pool: Callable[..., minipool.Pool]) -> None:
    """A job's exception is raised with its type and the worker traceback as __cause__."""
    pool = make_pool()
    with pytest.raises(ValueError, match="bad input") as raised:
        pool.submit(jobs.raise_value_error, "bad input").result(timeout=30)
    assert isinstance(raised.value.__cause__, minipool.RemoteTraceback)
    assert "raise_value_error" in str(raised.value.__cause__)
    outcomes = list(pool.map(jobs.fail_on_odd, range(6), return_exceptions=True))
    assert outcomes[::2] == [0, 2, 4]
    assert all(isinstance(outcome, ValueError) for outcome in outcomes[1::2])
    with pytest.raises(minipool.RemoteError, match="could not be pickled"):
        pool.submit(jobs.return_lock).result(timeout=30)


def test_init_state_and_teardown_run_on_each_worker(
    cluster: str, make_pool: Callable[..., minipool.Pool], tmp_path: Path
) -> None:
    """init runs once per Dask worker process, jobs read its state, teardown runs at shutdown."""
    pool = make_pool(init=jobs.init_with_markers, init_args=(str(tmp_path),))
    workers = _worker_pids(cluster)
    pairs = {pool.submit(jobs.state_pid).result(timeout=30) for _ in range(40)}
    assert all(state == pid for state, pid in pairs)
    assert {pid for _, pid in pairs} <= workers
    assert {path.name for path in tmp_path.iterdir()} == {f"init-{pid}" for pid in workers}
    pool.shutdown()
    expected = {f"{stage}-{pid}" for stage in ("init", "teardown") for pid in workers}
    assert {path.name for path in tmp_path.iterdir()} == expected
    assert all(path.read_text() == "x\n" for path in tmp_path.iterdir())  # once each


def test_worker_state_outside_a_job_still_fails_clearly() -> None:
    """The Dask path changes nothing in the caller: worker_state() there still raises."""
    with pytest.raises(RuntimeError, match="only available inside a job"):
        minipool.worker_state()


def test_init_args_that_cannot_reach_the_cluster_are_a_type_error(
    make_pool: Callable[..., minipool.Pool],
) -> None:
    """A multiprocessing queue reaches only processes this machine starts: ``Pool()`` on a
    cluster refuses it with a TypeError that names init."""
    queue = multiprocessing.get_context("spawn").SimpleQueue()
    try:
        with pytest.raises(TypeError, match="cannot send init init_keep_args and init_args"):
            make_pool(init=jobs.init_keep_args, init_args=(queue,))
    finally:
        queue.close()


def test_init_failure_raises_init_error(cluster: str, tmp_path: Path) -> None:
    """An init that raises on the workers fails Pool() with InitError, and leaves no plugin."""
    with pytest.raises(minipool.InitError, match="init failed on a Dask worker") as raised:
        minipool.Pool(cluster=cluster, init=jobs.init_raises, init_args=("no database",))
    assert isinstance(raised.value.__cause__, jobs.InitFailure)
    with _client(cluster) as client:
        plugins = client.run_on_scheduler(
            lambda dask_scheduler: list(dask_scheduler.worker_plugins)
        )
    assert not [name for name in plugins if name.startswith("minipool-")]


def test_logs_reach_the_caller(
    make_pool: Callable[..., minipool.Pool], caplog: pytest.LogCaptureFixture
) -> None:
    """structlog events and stdlib records from Dask jobs reach log_sink or the caller's logging."""
    events: list[dict[str, Any]] = []
    pool = make_pool(log_sink=events.append)
    assert list(pool.map(jobs.log_structlog, range(5))) == list(range(5))
    pool.submit(jobs.log_stdlib, "app.db", logging.WARNING, "slow query").result(timeout=30)
    ran = sorted(
        (event["item"], event["job_id"]) for event in events if event["event"] == "job ran"
    )
    assert [item for item, _ in ran] == list(range(5))
    assert all(job_id is not None for _, job_id in ran)
    record = next(event for event in events if event["event"] == "slow query")
    assert record["logger"] == "app.db" and record["level"] == "warning"
    assert record["color"] == "blue"

    caplog.set_level(logging.WARNING, logger="app.db")
    plain = make_pool()
    plain.submit(jobs.log_stdlib, "app.db", logging.WARNING, "to the caller").result(timeout=30)
    assert "to the caller" in [record.getMessage() for record in caplog.records]


def test_init_and_teardown_logs_reach_the_caller(
    cluster: str, make_pool: Callable[..., minipool.Pool]
) -> None:
    """What init and its teardown log on each Dask worker reaches log_sink, pid by pid."""
    events: list[dict[str, Any]] = []
    pool = make_pool(init=jobs.open_logged_resource, init_args=("db",), log_sink=events.append)
    assert pool.submit(jobs.read_state).result(timeout=30) == "db"
    pool.shutdown()
    workers = _worker_pids(cluster)
    for stage in ("opened", "closed"):
        pids = {event["pid"] for event in events if event["event"] == stage}
        assert pids == workers, stage
    assert all(event["tag"] == "db" for event in events)


def test_a_killed_worker_gives_worker_crashed(
    make_pool: Callable[..., minipool.Pool], tmp_path: Path
) -> None:
    """A job that SIGKILLs its Dask worker fails with WorkerCrashed; the pool goes on."""
    pool = make_pool()
    with pytest.raises(minipool.WorkerCrashed, match="died while running job") as raised:
        pool.submit(jobs.kill_self_with_signal, signal.SIGKILL).result(timeout=60)
    assert raised.value.job_id == 0
    assert pool.submit(jobs.square, 3).result(timeout=60) == 9
    assert pool.stats.worker_restarts == 1


@pytest.mark.parametrize("how", ["scheduler=pool", "config pool, processes"])
def test_dask_local_schedulers_run_lambdas_on_a_pool(how: str) -> None:
    """Dask's local schedulers take a pool as they take a ProcessPoolExecutor, with a
    graph of lambdas (the common idiom): ``compute(scheduler=pool)``, and
    ``dask.config.set(pool=pool)`` with ``scheduler="processes"`` (which reads
    ``pool._max_workers``). Either way the graph runs on the pool.

    (No leak check here: the module's cluster restarts workers that other tests killed.)
    """
    import dask
    import dask.bag

    with minipool.Pool(2, start_method="fork") as pool, dask.config.set(pool=pool):
        bag = dask.bag.from_sequence(range(10), npartitions=4).map(lambda x: x + 1)
        scheduler = pool if how == "scheduler=pool" else "processes"
        assert sorted(bag.compute(scheduler=scheduler)) == list(range(1, 11))
        assert pool.stats.completed > 0  # dask batches the partitions into a few jobs


def test_a_job_that_raised_retries(make_pool: Callable[..., minipool.Pool], tmp_path: Path) -> None:
    """With retries=1, a job that raised once runs again, counted as a retry, and succeeds."""
    pool = make_pool(retries=1)
    future = pool.submit(jobs.fail_first_attempts, str(tmp_path), "job", 1, "raise")
    assert future.result(timeout=60) == 2
    assert (pool.stats.retried, pool.stats.failed) == (1, 0)


def test_a_killed_worker_retries(make_pool: Callable[..., minipool.Pool], tmp_path: Path) -> None:
    """With retries=1, a job that killed its worker once runs again and succeeds.

    Its second run is a retry if the news of its start reached the caller before the
    news of the death; if not, it runs again unblamed (README: "On a Dask cluster"), and
    no retry is counted. Under load (CI, Python 3.13) the second happened.
    """
    pool = make_pool(retries=1)
    future = pool.submit(jobs.fail_first_attempts, str(tmp_path), "job", 1, "kill")
    assert future.result(timeout=60) == 2
    assert pool.stats.retried in (0, 1)
    assert pool.stats.failed == 0


def test_a_chunk_whose_worker_died_runs_again_job_by_job(
    make_pool: Callable[..., minipool.Pool],
) -> None:
    """Only the job that kills its worker fails; the other jobs of its chunk get results."""
    pool = make_pool()
    outcomes = list(pool.map(jobs.die_on_5, range(10), chunksize=10, return_exceptions=True))
    assert [x * x for x in range(10) if x != 5] == [o for o in outcomes if isinstance(o, int)]
    assert isinstance(outcomes[5], minipool.WorkerCrashed)


def test_task_timeout(make_pool: Callable[..., minipool.Pool], tmp_path: Path) -> None:
    """A job over task_timeout gets TaskTimeout, its worker is replaced, the pool goes on."""
    pool = make_pool(task_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(minipool.TaskTimeout, match="ran longer than task_timeout"):
        pool.submit(jobs.fail_first_attempts, str(tmp_path), "hang", 1, "hang").result(60)
    assert time.monotonic() - started < 30
    assert list(pool.map(jobs.square, range(20))) == [x * x for x in range(20)]
    retrying = make_pool(task_timeout=1.0, retries=1)
    retried = retrying.submit(jobs.fail_first_attempts, str(tmp_path), "again", 1, "hang")
    # Its second attempt may start on the worker being restarted for the first,
    # and then runs once more, unblamed: Dask runs a job at least once.
    assert retried.result(timeout=60) >= 2
    assert retrying.stats.retried == 1


def test_stop_lets_running_jobs_finish_and_cancels_the_rest(
    make_pool: Callable[..., minipool.Pool], tmp_path: Path
) -> None:
    """stop(): stop_requested() turns true in the running job, which then delivers its
    result; the jobs no worker started are cancelled."""
    pool = make_pool()
    started, seen = tmp_path / "started", tmp_path / "stop-seen"
    running = pool.submit(jobs.mark_when_stop_requested, str(started), str(seen))
    wait_for_path(started, 30)
    assert wait_for(running.running, 30)
    blocker, release = _dask_blocker(pool, tmp_path)
    queued = [pool.submit(jobs.write_marker, str(tmp_path), f"job-{x}") for x in range(5)]
    pool.stop()
    wait_for_path(seen, 30)  # the job saw stop_requested() turn true, on its worker
    release.touch()
    assert running.result(timeout=30) is None
    assert blocker.result(timeout=30) == "blocker"
    assert pool._backend.join(30)
    assert all(future.cancelled() for future in queued)
    assert not list(tmp_path.glob("job-*"))
    with pytest.raises(RuntimeError, match="shut down or stopped"):
        pool.submit(jobs.square, 1)


def _tasks_queued_on_worker(dask_worker: Any) -> int:
    """How many tasks a worker holds that it has not started (run on each worker)."""
    return sum(task.state in ("ready", "constrained") for task in dask_worker.state.tasks.values())


def _dask_blocker(pool: minipool.Pool, tmp_path: Path, name: str = "blocker") -> tuple[Any, Path]:
    """Submit a job that runs until the test creates the returned path; wait until it runs."""
    started, release = tmp_path / f"{name}-started", tmp_path / f"{name}-release"
    future = pool.submit(jobs.block_until_released, str(started), str(release), name)
    wait_for_path(started, 30)
    return future, release


def test_running_and_cancel_follow_the_job_on_its_worker(
    make_pool: Callable[..., minipool.Pool], cluster: str, tmp_path: Path
) -> None:
    """A job is running() once a worker starts it, and cannot be cancelled then; one that
    waits for a worker is not running(), and cancel() means it never runs."""
    pool = make_pool()
    first, release_first = _dask_blocker(pool, tmp_path, "first")
    second, release_second = _dask_blocker(pool, tmp_path, "second")
    assert wait_for(first.running, 30) and wait_for(second.running, 30)
    assert not first.cancel()
    waiting = pool.submit(jobs.write_marker, str(tmp_path), "waiting")  # both workers busy
    assert not wait_for(waiting.running, 1.0)
    assert waiting.cancel() and waiting.cancelled()
    # Dask tells the worker that holds the task in its queue after cancel() returns; a
    # worker freed before it hears would start it (README: "On a Dask cluster").
    with _client(cluster) as client:
        assert wait_for(lambda: sum(client.run(_tasks_queued_on_worker).values()) == 0, 30)
    release_first.touch()
    release_second.touch()
    assert (first.result(timeout=30), second.result(timeout=30)) == ("first", "second")
    assert pool.submit(jobs.square, 4).result(timeout=30) == 16
    assert not (tmp_path / "waiting").exists()


def test_a_job_waiting_at_a_worker_that_dies_runs_again_unblamed(tmp_path: Path) -> None:
    """On a cluster whose workers take more tasks than they run (worker-saturation above
    1), a worker killed by its job fails that job alone: the one waiting behind it, which
    never said it had started, runs again."""
    cluster = dask_cluster(tmp_path, 1, saturation="inf")
    with cluster as (address, _), minipool.Pool(cluster=address) as pool:
        started, release = tmp_path / "started", tmp_path / "release"
        killer = pool.submit(jobs.block_then_kill, str(started), str(release))
        wait_for_path(started, 30)
        waiting = pool.submit(jobs.square, 3)
        release.touch()
        with pytest.raises(minipool.WorkerCrashed):
            killer.result(timeout=60)
        assert waiting.result(timeout=60) == 9


def test_stats_and_progress(
    make_pool: Callable[..., minipool.Pool], capfd: pytest.CaptureFixture[str]
) -> None:
    """stats counts the jobs; progress=True draws a bar, as on the process pool."""
    pool = make_pool()
    assert len(list(pool.map(jobs.fail_on_odd, range(20), return_exceptions=True, progress=True)))
    stats = pool.stats
    assert (stats.submitted, stats.completed, stats.failed, stats.running) == (20, 20, 10, 0)
    assert stats.workers_alive == WORKERS
    assert "20/20" in capfd.readouterr().err


def test_a_lost_scheduler_fails_the_jobs_and_never_hangs(tmp_path: Path) -> None:
    """The scheduler dies mid-job: the job fails with PoolError naming Dask; shutdown returns
    once the client stops waiting for the scheduler to come back (Dask's connect timeout)."""
    import dask

    with dask_cluster(tmp_path, 1) as (address, processes):
        with dask.config.set({CONNECT_TIMEOUT: SHORT_CONNECT_TIMEOUT}):
            pool = minipool.Pool(cluster=address)
        started = tmp_path / "started"
        future = pool.submit(jobs.block_until_released, str(started), str(tmp_path / "never"))
        wait_for_path(started, 30)
        os.killpg(processes[0].pid, signal.SIGKILL)
        with pytest.raises(minipool.PoolError, match=r"Dask could not run jobs 0\.\.0"):
            future.result(timeout=60)
        pool.shutdown()  # returns once the client gives up on the scheduler


def test_a_client_of_the_users_stays_open(cluster: str) -> None:
    """Given a Client, the pool uses it and leaves it open at shutdown."""
    with _client(cluster) as client:
        with minipool.Pool(cluster=client) as pool:
            assert pool.submit(jobs.square, 5).result(timeout=30) == 25
        assert client.submit(abs, -2, pure=False).result(timeout=30) == 2


def test_runner_with_cluster(cluster: str, tmp_path: Path) -> None:
    """python -m minipool run --cluster ADDRESS maps over the records on the Dask workers."""
    (tmp_path / "in.jsonl").write_text("".join(f"{i}\n" for i in range(30)))
    command = [sys.executable, "-m", "minipool", "run", "runner_jobs:fail_on_odd"]
    options = ["--input", "in.jsonl", "--output", "out.jsonl", "--cluster", cluster]
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    done = subprocess.run(
        [*command, *options], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
    )
    assert done.returncode == 1, done.stderr  # some records failed
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(line["index"] for line in lines) == list(range(30))
    assert all(("result" in line) == (line["index"] % 2 == 0) for line in lines)
    unreachable = subprocess.run(
        [*command, "--input", "in.jsonl", "--cluster", "tcp://127.0.0.1:1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": SHORT_CONNECT_TIMEOUT},
        timeout=60,
    )
    assert unreachable.returncode == 2, unreachable.stderr
    assert "could not connect to the Dask scheduler" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


# ---- what the pool refuses ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "hint"),
    [
        ({"workers": 4}, "the cluster decides"),
        ({"start_method": "spawn"}, "Dask starts its own"),
        ({"max_tasks_per_worker": 10}, "--lifetime"),
        ({"max_worker_memory": 1 << 30}, "--memory-limit"),
    ],
)
def test_process_only_options_are_refused(option: dict[str, Any], hint: str) -> None:
    """Options only the process pool has raise ValueError naming what Dask offers instead."""
    with pytest.raises(ValueError, match=hint):
        minipool.Pool(cluster="tcp://127.0.0.1:1", **option)


def test_a_bad_cluster_is_refused() -> None:
    """cluster must be an address, a Client or "local"."""
    with pytest.raises(TypeError, match="Dask scheduler address"):
        minipool.Pool(cluster=8786)


# ---- cluster="local", imports, security -----------------------------------------------------


def _listening_sockets() -> dict[str, str]:
    """inode -> local address (hex, as /proc shows it) of each TCP socket this process
    holds in LISTEN state."""
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed since listdir
            continue
        if target.startswith("socket:["):
            mine.add(target[len("socket:[") : -1])
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in mine:  # LISTEN
                listening[fields[9]] = fields[1].partition(":")[0]
    return listening


def test_the_backend_opens_no_listener(cluster: str) -> None:
    """On a cluster of the user's, the pool only connects: this process listens on nothing new."""
    before = _listening_sockets()
    with minipool.Pool(cluster=cluster) as pool:
        pool.submit(jobs.square, 2).result(timeout=30)
        assert _listening_sockets() == before


def test_local_cluster_on_loopback(tmp_path: Path) -> None:
    """cluster="local" starts worker processes bound to 127.0.0.1, runs init, and stops them."""
    with minipool.Pool(
        2, cluster="local", init=jobs.init_with_markers, init_args=(str(tmp_path),)
    ) as pool:
        local = pool._backend._owned[1]  # type: ignore[attr-defined]
        addresses = [local.scheduler_address, *local.scheduler_info["workers"]]
        assert all(address.startswith("tcp://127.0.0.1:") for address in addresses)
        # The scheduler runs here: it and its HTTP server listen on loopback only.
        listening = set(_listening_sockets().values())
        assert listening and listening <= {"0100007F"}, listening
        assert pool.workers == 2
        pids = {pid for _, pid in (pool.submit(jobs.state_pid).result(60) for _ in range(20))}
        assert pids and os.getpid() not in pids
        local.scale(1)  # a worker that closes runs its teardown then
        assert wait_for(lambda: len(list(tmp_path.glob("teardown-*"))) == 1, 30)
    assert {path.name.split("-")[0] for path in tmp_path.iterdir()} == {"init", "teardown"}
    assert len(list(tmp_path.glob("teardown-*"))) == len(list(tmp_path.glob("init-*"))) == 2
    assert wait_for(lambda: not any(_alive(pid) for pid in pids), 30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_local_cluster_without_the_main_guard_says_so(tmp_path: Path) -> None:
    """A script that makes a local cluster at import time gets an error naming the fix."""
    script = tmp_path / "unguarded.py"
    script.write_text('import minipool\nminipool.Pool(1, cluster="local")\n')
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert 'put that under `if __name__ == "__main__":`' in done.stderr.splitlines()[-1]


def test_import_minipool_never_imports_distributed() -> None:
    """import minipool, and a process pool, leave distributed unimported."""
    done = _python(
        """
        import sys, minipool
        with minipool.Pool(1) as pool:
            pool.submit(abs, -1).result()
        print(sorted(name for name in sys.modules if name.split(".")[0] in ("dask", "distributed")))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_without_the_extra_the_error_says_how_to_install_it() -> None:
    """Pool(cluster=...) without distributed raises ImportError with the pip install line."""
    done = _python(
        """
        import sys
        sys.modules["distributed"] = None  # as if the cluster extra were not installed
        import minipool
        try:
            minipool.Pool(cluster="tcp://127.0.0.1:8786")
        except ImportError as error:
            print(error)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'dask[distributed]'" in done.stdout
    assert "pip install -e '.[cluster]'" in done.stdout


def test_a_shared_object_is_scattered_to_the_workers_and_sent_as_its_key(
    make_pool: Callable[..., minipool.Pool],
) -> None:
    """On a cluster, ``share`` scatters the object to every worker: a ``Shared`` pickles as
    the key of that copy, not as the object; every job gets the object; ``value`` is the
    caller's; a released one cannot be sent."""
    pool = make_pool()
    data = os.urandom(2_000_000)
    shared = pool.share(data)
    assert len(pickle.dumps(shared)) < 1000
    assert set(pool.map(zlib.crc32, [shared] * 20, chunksize=1)) == {zlib.crc32(data)}
    assert pool.submit(len, shared).result(timeout=60) == len(data)
    assert shared.value is data
    shared.release()
    assert shared.released
    with pytest.raises(TypeError, match="this Shared was released"):
        pool.submit(len, shared)
    assert pool.submit(len, b"the pool goes on").result(timeout=60) == 16
