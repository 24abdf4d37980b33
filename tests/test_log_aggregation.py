"""examples/log_aggregation.py: the parallel run agrees with one process, line for line.

The example is imported (with examples/ on the path, as when it runs as a
script), and its functions run on a leak-checked pool; it also runs once as a
script, the way users run it.
"""

from __future__ import annotations

import importlib
import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from helpers import run_leaving_nothing

import minipool

MakePool = Callable[..., minipool.Pool]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE = EXAMPLES / "log_aggregation.py"
LINES = 20_000
FILES = 3
SEED = 7
# Small, so that there are many jobs and nearly every boundary cuts a line.
CHUNK_BYTES = 32_768


@pytest.fixture(scope="module")
def demo() -> Iterator[ModuleType]:
    """The example as the module ``log_aggregation`` (forked workers inherit it)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield importlib.import_module("log_aggregation")
    finally:
        sys.path.remove(str(EXAMPLES))
        for name in ("log_aggregation", "access_logs"):
            sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def logs(demo: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three small generated log files, written in this process."""
    directory = tmp_path_factory.mktemp("logs")
    generator = sys.modules["access_logs"]  # imported by the example
    paths = [directory / f"access-{index:02d}.log" for index in range(FILES)]
    for index, path in enumerate(paths):
        lines = LINES // FILES + (index < LINES % FILES)
        generator.write_log_file((str(path), lines, SEED, index))
    return paths


@dataclass
class Run:
    """What one parallel run left behind."""

    aggregate: Any
    jobs: list[tuple[str, int, int]]
    out: Path
    events: list[dict[str, Any]]


def run_parallel(demo: ModuleType, logs: list[Path], make_pool: MakePool, tmp_path: Path) -> Run:
    """Aggregate ``logs`` on two workers with shards and a JSON-lines log, as main() does."""
    out, log_file = tmp_path / "out", tmp_path / "events.jsonl"
    demo.prepare_output(out, log_file)
    jobs = demo.plan_jobs(logs, CHUNK_BYTES)
    sink = demo.JsonLinesSink(log_file)
    pool = make_pool(2, init=demo.open_shard, init_args=(str(out),), log_sink=sink)
    try:
        aggregate = demo.aggregate_parallel(pool, jobs, progress=False)
        pool.shutdown()  # the workers close their shards
    finally:
        sink.close()
    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    return Run(aggregate, jobs, out, events)


def test_ranges_cover_every_line_exactly_once(demo: ModuleType, tmp_path: Path) -> None:
    """For any job size, the ranges of a file read back each line once, at its own offset."""
    path = tmp_path / "edge.log"
    lines = [b"a", b"", b"bb", b"x" * 37, b"", b"", b"ccc", b"\xff\x16garbage", b"dd"]
    data = b"\n".join(lines) + b"\n" + b"no final newline"
    path.write_bytes(data)
    for chunk_bytes in [*range(1, 45), len(data) - 1, len(data), len(data) + 1]:
        pieces = [demo.read_lines(*job) for job in demo.plan_jobs([path], chunk_bytes)]
        for offset, text in pieces:
            assert data[offset : offset + len(text)] == text.encode("latin-1")
        assert "".join(text for _, text in pieces).encode("latin-1") == data, chunk_bytes


def test_percentiles_are_exact_and_survive_merging(demo: ModuleType) -> None:
    """Nearest-rank percentiles of merged Counters equal those of all the values at once."""
    values = [7, 1, 3, 3, 9, 100, 2, 5, 5, 5]
    assert demo.percentiles(Counter(values)) == (5, 100, 100)
    assert demo.percentiles(Counter(range(1, 101))) == (50, 95, 99)
    merged = Counter(values[:4])
    merged.update(Counter(values[4:]))
    assert demo.percentiles(merged) == demo.percentiles(Counter(values))


def test_parallel_report_equals_single_process(
    demo: ModuleType, logs: list[Path], make_pool: MakePool, tmp_path: Path
) -> None:
    """Byte-range jobs on a pool give exactly the whole-file, single-process aggregate."""
    run = run_parallel(demo, logs, make_pool, tmp_path)
    reference = demo.aggregate_reference(logs)
    assert len(run.jobs) > 50
    assert run.aggregate["lines"] == LINES
    assert run.aggregate["malformed"] > 0
    assert run.aggregate == reference
    assert demo.build_report(run.aggregate, 10) == demo.build_report(reference, 10)


def test_shards_hold_exactly_the_malformed_lines(
    demo: ModuleType, logs: list[Path], make_pool: MakePool, tmp_path: Path
) -> None:
    """The workers' shards record every job once and every malformed line once, at its offset."""
    run = run_parallel(demo, logs, make_pool, tmp_path)
    expected = {
        (path.name, offset, demo.shown(line))
        for path in logs
        for offset, line in demo.parse_range(str(path), 0, path.stat().st_size)[1]
    }
    chunks, malformed = [], []
    shards = sorted(run.out.glob("shard-*.sqlite"))
    for shard_path in shards:
        shard = sqlite3.connect(shard_path)
        try:
            chunks += shard.execute("SELECT file, start_byte, end_byte FROM chunks").fetchall()
            malformed += shard.execute("SELECT file, offset, text FROM malformed").fetchall()
        finally:
            shard.close()
    assert 1 <= len(shards) <= 2
    assert sorted(chunks) == sorted((Path(p).name, start, end) for p, start, end in run.jobs)
    assert len(malformed) == len(set(malformed)) == run.aggregate["malformed"]
    assert set(malformed) == expected
    files = {path.name: path.read_bytes() for path in logs}
    for file, offset, text in malformed:  # each offset is where its line starts
        assert offset == 0 or files[file][offset - 1 : offset] == b"\n"
        line = files[file][offset:].split(b"\n", 1)[0]
        assert demo.shown(line.decode("latin-1")) == text


def test_log_file_has_one_chunk_event_per_job(
    demo: ModuleType, logs: list[Path], make_pool: MakePool, tmp_path: Path
) -> None:
    """Each job's info event reaches the JSON-lines file from a worker, with its ids and stats."""
    run = run_parallel(demo, logs, make_pool, tmp_path)
    chunks = [event for event in run.events if event["event"] == "chunk parsed"]
    assert len(chunks) == len(run.jobs)
    assert len({event["job_id"] for event in chunks}) == len(run.jobs)
    for event in chunks:
        assert event["level"] == "info"
        assert isinstance(event["worker_id"], int) and isinstance(event["job_id"], int)
        assert event["pid"] != os.getpid()
    assert {(event["file"], event["start"], event["end"]) for event in chunks} == {
        (Path(path).name, start, end) for path, start, end in run.jobs
    }
    assert sum(event["lines"] for event in chunks) == LINES
    assert sum(event["bytes"] for event in chunks) == sum(path.stat().st_size for path in logs)
    assert sum(event["malformed"] for event in chunks) == run.aggregate["malformed"]
    closed = [event for event in run.events if event["event"] == "shard closed"]
    assert 1 <= len(closed) <= 2  # logged in each worker's teardown
    assert sum(event["chunks"] for event in closed) == len(run.jobs)
    warned = Counter(event["job_id"] for event in run.events if event["event"] == "malformed line")
    assert 0 < max(warned.values()) <= demo.WARNINGS_PER_CHUNK


def test_script_runs_end_to_end(
    demo: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run as a script it generates, aggregates, reports agreement and exits 0; logs are reused."""
    logs, out = tmp_path / "logs", tmp_path / "out"
    options = ["--lines", str(LINES), "--files", str(FILES), "--seed", str(SEED)]
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--dir",
            str(logs),
            *options,
            "--workers",
            "2",
            "--chunk-bytes",
            str(CHUNK_BYTES),
            "--out",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the parallel and single-process reports are identical" in done.stdout
    assert "Traceback" not in done.stderr
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert {event["event"] for event in events} >= {"chunk parsed", "malformed line"}
    capsys.readouterr()
    demo.generate_logs(logs, LINES, FILES, SEED, workers=1)  # the same options: nothing to do
    assert capsys.readouterr().out.startswith("reusing 3 log files")


def test_script_leaves_nothing_behind_and_honours_top(tmp_path: Path) -> None:
    """Without --dir or --out, logs and shards live in temporary directories that are gone
    at the end; --top 2 cuts every table to two rows, endpoints too."""
    command = [
        sys.executable,
        str(EXAMPLE),
        *("--lines", str(LINES), "--files", str(FILES), "--seed", str(SEED)),
        *("--workers", "2", "--chunk-bytes", str(CHUNK_BYTES), "--top", "2", "--no-progress"),
    ]
    tables = run_leaving_nothing(tmp_path, command, timeout=50).stdout.split("\n\n")
    for title in ("top paths", "top clients", "endpoint"):
        (table,) = [text for text in tables if text.startswith(title)]
        assert len(table.splitlines()) == 1 + 2, table
