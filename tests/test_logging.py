"""Worker logs reach the caller: structured, complete, exactly once, before the job's result.

Events from ``minipool.get_logger()`` (structlog) and from the ``logging``
module in workers arrive in the caller through ``log_sink`` or through the
caller's own structlog and logging configuration, with levels the caller
filters out never shipped.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jobs
import pytest
import structlog
from helpers import wait_for

import minipool
from minipool._backends.processes.log_spill import SPILL_BYTES
from minipool._context import IDLE, WorkerContext
from minipool._execute import LastOutcome, Results, run_chunk
from minipool._messages import UNTRACKED, Chunk

Events = list[dict[str, Any]]
TIMEOUT = 30.0


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def caller_logger(request: pytest.FixtureRequest) -> Iterator[tuple[str, ListHandler]]:
    """A caller-side logger of the test's own (INFO, not propagating) and its records."""
    name = f"minipool.tests.{request.node.name}"
    logger = logging.getLogger(name)
    handler = ListHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield name, handler
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


@pytest.fixture
def structlog_defaults() -> Iterator[None]:
    """Put structlog's configuration back after a test changes it."""
    yield
    structlog.reset_defaults()


def test_every_structlog_event_arrives_once_with_its_keys(
    make_pool: Callable[..., minipool.Pool], start_method: str
) -> None:
    """500 jobs each log one event: exactly 500 arrive, with bound keys, worker and job ids."""
    events: Events = []
    with make_pool(2, start_method=start_method, log_sink=events.append) as pool:
        assert list(pool.map(jobs.log_structlog, range(500))) == list(range(500))
    assert len(events) == 500
    assert sorted(event["item"] for event in events) == list(range(500))
    for event in events:
        assert event["event"] == "job ran"
        assert event["level"] == "info"
        assert event["source"] == "test"
        assert event["square"] == event["item"] ** 2
        assert event["job_id"] == event["item"]  # a fresh pool numbers jobs from 0
        assert event["worker_id"] in (0, 1)
        assert event["pid"] != os.getpid()
        assert isinstance(event["timestamp"], float)


def test_events_come_before_the_result(make_pool: Callable[..., minipool.Pool]) -> None:
    """When a job's future resolves, the events it logged have been delivered."""
    events: Events = []
    pool = make_pool(2, log_sink=events.append)
    for x in range(50):
        assert pool.submit(jobs.log_structlog, x).result(timeout=TIMEOUT) == x
        assert events[-1]["item"] == x


def test_job_ids_are_right_in_fast_maps(make_pool: Callable[..., minipool.Pool]) -> None:
    """Jobs fast enough to run untracked still log their own job id."""
    events: Events = []
    with make_pool(2, log_sink=events.append) as pool:
        assert sum(pool.map(jobs.log_if_round, range(50_000))) == sum(range(50_000))
    assert [event["job_id"] for event in events] == [event["item"] for event in events]
    assert sorted(event["item"] for event in events) == list(range(0, 50_000, 100))


def test_an_untracked_chunk_knows_which_job_runs() -> None:
    """In a chunk run as one C-level map(), each job still sees its own job id."""
    cells = _Cells()
    context = WorkerContext(0, cells, cells)
    seen: list[int | None] = []

    def job(x: int) -> int:
        seen.append(context.job_id())
        if x == 2:
            raise ValueError("the map resumes after this")
        return x

    chunk = Chunk(b"", list(range(5)), False, None, UNTRACKED)
    results = Results(1, 100, 5)
    run_chunk(chunk, job, context, results, LastOutcome())
    assert seen == [100, 101, 102, 103, 104]
    [outcome] = results.take(final=True)
    assert isinstance(outcome.values, bytes)
    assert pickle.loads(outcome.values) == [0, 1, None, 3, 4]
    assert list(outcome.errors) == [2]
    assert context.job_id() is None


class _Cells:
    """A worker's job cells and stop flag, outside any worker."""

    stop_requested = False

    def __init__(self) -> None:
        self.jobs = [0, IDLE]
        self.started = [0.0]


def test_stdlib_records_reach_the_callers_handlers(
    make_pool: Callable[..., minipool.Pool], caller_logger: tuple[str, ListHandler]
) -> None:
    """A record logged in a worker reaches the caller's logger, extras and all."""
    name, handler = caller_logger
    with make_pool(2) as pool:
        pool.submit(jobs.log_stdlib, name, logging.INFO, "from the worker").result(TIMEOUT)
    [record] = handler.records
    assert record.getMessage() == "from the worker"
    assert record.levelno == logging.INFO
    assert record.process != os.getpid()
    assert record.worker_id in (0, 1)  # type: ignore[attr-defined]
    assert record.job_id == 0  # type: ignore[attr-defined]
    assert record.color == "blue"  # type: ignore[attr-defined]


def test_a_record_formats_in_the_caller_as_in_its_worker(
    make_pool: Callable[..., minipool.Pool], caller_logger: tuple[str, ListHandler]
) -> None:
    """Every attribute a format string can name travels: the caller's formatter writes the
    very line a formatter in the worker wrote (a stack included)."""
    name, handler = caller_logger
    with make_pool(1) as pool:
        in_worker = pool.submit(jobs.log_stdlib_formatted, name).result(TIMEOUT)
    [record] = handler.records
    assert logging.Formatter(jobs.EVERY_RECORD_FIELD).format(record) == in_worker
    assert "words and 7" in in_worker and "Stack (most recent call last)" in in_worker
    assert record.args is None and record.exc_info is None


def test_a_records_extras_reach_the_sink_and_odd_ones_arrive_as_their_repr(
    make_pool: Callable[..., minipool.Pool], caller_logger: tuple[str, ListHandler]
) -> None:
    """Through ``log_sink``, a record is an event dict with its ``extra=`` keys; an extra
    that does not pickle arrives as its repr, and the others as they are."""
    name, _ = caller_logger
    events: Events = []
    with make_pool(1, log_sink=events.append) as pool:
        pool.submit(jobs.log_stdlib_unpicklable, name).result(TIMEOUT)
    [event] = events
    assert (event["event"], event["level"], event["logger"]) == ("odd extra", "info", name)
    assert (event["color"], event["job_id"], event["worker_id"]) == ("green", 0, 0)
    assert "lock" in event["lock"]


def test_structlog_events_go_through_the_callers_structlog(
    make_pool: Callable[..., minipool.Pool], structlog_defaults: None
) -> None:
    """Without a sink, worker events run through the caller's structlog processors."""
    with structlog.testing.capture_logs() as captured, make_pool(2) as pool:
        pool.submit(jobs.log_structlog, 7).result(timeout=TIMEOUT)
    [event] = captured
    assert event["event"] == "job ran"
    assert event["log_level"] == "info"
    assert (event["item"], event["square"], event["job_id"]) == (7, 49, 0)
    assert event["pid"] != os.getpid()


def test_tracebacks_travel_as_text(
    make_pool: Callable[..., minipool.Pool], caller_logger: tuple[str, ListHandler]
) -> None:
    """``logger.exception`` in a worker: the caller gets the traceback text."""
    name, handler = caller_logger
    events: Events = []
    with make_pool(1, log_sink=events.append) as pool:
        pool.submit(jobs.log_exception, name).result(timeout=TIMEOUT)
    with make_pool(1) as pool:
        pool.submit(jobs.log_exception, name).result(timeout=TIMEOUT)
    assert [event["event"] for event in events] == ["stdlib failure", "structlog failure"]
    for event in events:
        assert "ZeroDivisionError" in event["exception"]
        assert event["level"] == "error"
    [record] = handler.records
    assert "ZeroDivisionError" in logging.Formatter().format(record)


def test_levels_the_caller_filters_out_are_not_shipped(
    make_pool: Callable[..., minipool.Pool],
    caller_logger: tuple[str, ListHandler],
    structlog_defaults: None,
) -> None:
    """The sink sees what workers ship: only levels the caller's configuration keeps."""
    name, _ = caller_logger
    logging.getLogger(name).setLevel(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    events: Events = []
    with make_pool(1, log_sink=events.append) as pool:
        pool.submit(jobs.log_at_each_level, name).result(timeout=TIMEOUT)
    shipped = [(event["event"], event["level"]) for event in events]
    assert shipped == [("structlog", "info"), ("stdlib", "warning"), ("structlog", "warning")]


def test_log_level_overrides_the_callers_levels(
    make_pool: Callable[..., minipool.Pool],
    caller_logger: tuple[str, ListHandler],
    structlog_defaults: None,
) -> None:
    """``log_level`` ships that level and up whatever the caller's configuration says."""
    name, _ = caller_logger
    logging.getLogger(name).setLevel(logging.ERROR)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    events: Events = []
    with make_pool(1, log_sink=events.append, log_level="info") as pool:
        pool.submit(jobs.log_at_each_level, name).result(timeout=TIMEOUT)
    shipped = [(event["event"], event["level"]) for event in events]
    assert shipped == [
        ("stdlib", "info"),
        ("structlog", "info"),
        ("stdlib", "warning"),
        ("structlog", "warning"),
    ]


@pytest.mark.parametrize("level", ["LOUD", 2.5, True])
def test_log_level_must_be_a_level(level: object) -> None:
    """An unknown level name or a value of the wrong type is refused, naming the argument."""
    with pytest.raises(ValueError, match="log_level must be a logging level"):
        minipool.Pool(1, log_level=level)  # type: ignore[arg-type]


def test_logs_from_init_and_teardown_arrive(make_pool: Callable[..., minipool.Pool]) -> None:
    """A generator init's events, on opening and on closing, reach the caller by shutdown."""
    events: Events = []
    pool = make_pool(2, init=jobs.open_logged_resource, init_args=("db",), log_sink=events.append)
    pool.submit(jobs.square, 2).result(timeout=TIMEOUT)
    pool.shutdown()
    by_worker = {
        worker: [e["event"] for e in events if e["worker_id"] == worker] for worker in (0, 1)
    }
    assert by_worker == {0: ["opened", "closed"], 1: ["opened", "closed"]}
    assert all(event["tag"] == "db" and event["job_id"] is None for event in events)


def test_nothing_is_lost_across_recycling(make_pool: Callable[..., minipool.Pool]) -> None:
    """Workers replaced every 3 jobs: every job's event and every init/teardown event arrives."""
    events: Events = []
    with make_pool(
        2,
        max_tasks_per_worker=3,
        init=jobs.open_logged_resource,
        init_args=("r",),
        log_sink=events.append,
    ) as pool:
        assert list(pool.map(jobs.log_structlog, range(60), chunksize=1)) == list(range(60))
    # After shutdown: a worker that retires with its last job is replaced
    # (and its replacement torn down) after the map has returned.
    restarts = pool.stats.worker_restarts
    assert restarts >= 60 // 3 - 2
    assert sorted(e["item"] for e in events if e["event"] == "job ran") == list(range(60))
    opened = [e for e in events if e["event"] == "opened"]
    closed = [e for e in events if e["event"] == "closed"]
    assert len(opened) == len(closed) == restarts + 2
    assert len({event["pid"] for event in opened}) == len(opened)


def test_nothing_is_lost_through_stop(
    make_pool: Callable[..., minipool.Pool], tmp_path: Path
) -> None:
    """Jobs running when ``stop()`` comes log to the end; everything arrives."""
    events: Events = []
    pool = make_pool(2, log_sink=events.append)
    markers = [tmp_path / f"started-{n}" for n in range(2)]
    futures = [pool.submit(jobs.log_until_stop_requested, str(marker)) for marker in markers]
    assert wait_for(lambda: all(marker.exists() for marker in markers), TIMEOUT)
    pool.stop()
    pool.shutdown()
    assert [future.result(timeout=TIMEOUT) for future in futures] == [True, True]
    assert sorted(event["event"] for event in events) == ["started"] * 2 + ["stopping"] * 2


@pytest.mark.parametrize("how", ["sigkill", "segfault", "exit"])
def test_last_words_before_a_crash_arrive(
    make_pool: Callable[..., minipool.Pool], start_method: str, how: str
) -> None:
    """Events logged just before a worker dies reach the caller, before its WorkerCrashed."""
    events: Events = []
    pool = make_pool(1, start_method=start_method, log_sink=events.append)
    with pytest.raises(minipool.WorkerCrashed):
        pool.submit(jobs.log_then_crash, how).result(timeout=TIMEOUT)
    assert [(event["event"], event["job_id"]) for event in events] == [
        ("last words", 0),
        ("stdlib last words", 0),
    ]
    assert pool.submit(jobs.log_structlog, 1).result(timeout=TIMEOUT) == 1
    assert events[-1]["item"] == 1


def test_a_long_jobs_events_arrive_while_it_runs(
    make_pool: Callable[..., minipool.Pool], tmp_path: Path
) -> None:
    """An event does not wait for the end of the job that logged it."""
    events: Events = []
    pool = make_pool(1, log_sink=events.append)
    release = tmp_path / "release"
    future = pool.submit(jobs.log_then_wait, str(release))
    try:
        assert wait_for(lambda: events, TIMEOUT)
        assert not future.done()
    finally:
        release.touch()  # a failing test must not leave the job waiting
    assert future.result(timeout=TIMEOUT) == "released"


def test_more_events_than_the_spill_holds_arrive_in_order(
    make_pool: Callable[..., minipool.Pool],
) -> None:
    """A job logging megabytes, and one event bigger than the spill, lose nothing."""
    events: Events = []
    with make_pool(1, log_sink=events.append) as pool:
        assert pool.submit(jobs.log_many, 5_000, 300).result(timeout=TIMEOUT) == 5_000
        assert pool.submit(jobs.log_many, 1, 2 * SPILL_BYTES).result(timeout=TIMEOUT) == 1
    assert [event["number"] for event in events] == [*range(5_000), 0]
    assert len(events[-1]["padding"]) == 2 * SPILL_BYTES


def test_events_from_other_threads_and_odd_values_arrive(
    make_pool: Callable[..., minipool.Pool],
) -> None:
    """A thread started by a job logs too; a value that does not pickle arrives as its repr."""
    events: Events = []
    with make_pool(1, log_sink=events.append) as pool:
        pool.submit(jobs.log_from_thread).result(timeout=TIMEOUT)
        pool.submit(jobs.log_unpicklable).result(timeout=TIMEOUT)
    assert [event["event"] for event in events] == ["from a thread", "odd value"]
    assert "lock" in events[1]["lock"]


@pytest.mark.parametrize("raised", [RuntimeError, SystemExit], ids=["error", "system-exit"])
def test_a_failing_sink_is_reported_once_and_the_pool_runs_on(
    make_pool: Callable[..., minipool.Pool],
    capsys: pytest.CaptureFixture[str],
    raised: type[BaseException],
) -> None:
    """A sink that raises (even ``SystemExit``) loses its events, says so once on stderr,
    and breaks nothing: the pool's thread goes on."""

    def broken_sink(event: dict[str, Any]) -> None:
        raise raised("sink is broken")

    with make_pool(1, log_sink=broken_sink) as pool:
        assert list(pool.map(jobs.log_structlog, range(10))) == list(range(10))
        assert pool.submit(jobs.log_structlog, 11).result(timeout=TIMEOUT) == 11
    err = capsys.readouterr().err
    assert err.count("log_sink raised") == 1
    assert f"{raised.__name__}: sink is broken" in err


def test_an_event_whose_value_exits_as_it_unpickles_is_reported_in_its_place(
    make_pool: Callable[..., minipool.Pool],
) -> None:
    """A logged value whose unpickling raises ``SystemExit`` in the caller becomes an event
    that says so; the pool's thread goes on."""
    events: Events = []
    with make_pool(1, log_sink=events.append) as pool:
        pool.submit(jobs.log_value_that_exits_in_the_caller).result(timeout=TIMEOUT)
        assert pool.submit(jobs.log_structlog, 3).result(timeout=TIMEOUT) == 3
    assert "could not be unpickled in the caller" in events[0]["event"]
    assert len(events) == 2


def test_inherited_handlers_do_not_write_twice(tmp_path: Path) -> None:
    """Under fork a worker inherits the caller's handlers; a record is still written once."""
    name = "minipool.tests.file"
    logger = logging.getLogger(name)
    handler = logging.FileHandler(tmp_path / "log.txt")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with minipool.Pool(1, start_method="fork") as pool:
            pool.submit(jobs.log_stdlib, name, logging.WARNING, "once").result(TIMEOUT)
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.propagate = True
    assert (tmp_path / "log.txt").read_text().splitlines() == ["once"]


def test_print_in_a_worker_still_reaches_stdout(
    make_pool: Callable[..., minipool.Pool], capfd: pytest.CaptureFixture[str]
) -> None:
    """Workers' stdout is untouched: ``print`` works as it always did."""
    with make_pool(1) as pool:
        pool.submit(jobs.log_and_print, 5).result(timeout=TIMEOUT)
    assert "printed by job 5" in capfd.readouterr().out


def test_get_logger_in_the_caller_is_the_callers_structlog(structlog_defaults: None) -> None:
    """Outside a worker ``get_logger`` logs through the caller's own structlog."""
    with structlog.testing.capture_logs() as captured:
        minipool.get_logger(run=1).warning("in the caller")
    assert captured == [{"run": 1, "event": "in the caller", "log_level": "warning"}]


def test_log_sink_must_be_callable() -> None:
    """A sink that is not callable is refused by the constructor, naming the argument."""
    with pytest.raises(TypeError, match="log_sink must be a callable"):
        minipool.Pool(1, log_sink="events.jsonl")  # type: ignore[arg-type]
