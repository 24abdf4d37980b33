"""Parallel log aggregation: byte ranges of access logs, per-worker SQLite shards, worker logs.

Generates web-server access logs (the Combined Log Format with the response
time in microseconds at the end, as Apache's ``%D`` writes it), then
aggregates them twice: in parallel with a minipool pool, and in this one
process as a reference. It prints the report (requests and bytes per status
class, the top paths and client IPs, exact p50/p95/p99 response times per
endpoint), the speedup, and exits non-zero unless the two runs agree on every
count.

- A job is a byte range of one file, ``(path, start, end)``. The worker aligns
  it to line boundaries itself: a line belongs to the job in which it starts.
  Only a path and two numbers cross the pipe per job, never a line of text.
- Each worker writes to its own SQLite shard, opened in a generator ``init``
  and closed in the teardown after ``yield``: per-chunk stats and every
  malformed line with its file and byte offset.
- A job returns a partial aggregate built from Counters only, so merging is
  exact and order-free: response times are counted per integer microsecond,
  so the merged percentiles equal the single-process ones to the microsecond.
- Workers log through ``minipool.get_logger()``: an info event per chunk and a
  warning per malformed line (the first few per chunk). The pool hands each
  event to ``log_sink`` in this process, which appends it to a JSON-lines file
  (``--log-file``, by default ``events.jsonl`` next to the shards in ``--out``).

    python examples/log_aggregation.py                     # 2,000,000 lines in 8 files
    python examples/log_aggregation.py --lines 200000 --workers 4 --chunk-bytes 1000000

The logs come from ``access_logs.py`` next to this file. They are kept in
``--dir`` with a manifest; a later run with the same ``--lines``, ``--files``
and ``--seed`` reuses them, any other regenerates.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import os
import re
import sqlite3
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from access_logs import LINE, generate_logs
from structlog.typing import FilteringBoundLogger

import minipool

# Plain tuples, dicts and Counters: a job's result crosses a pipe, and these
# pickle small and fast.
Job = tuple[str, int, int]  # (path, start, end): the lines that start in [start, end)
Malformed = tuple[int, str]  # (byte offset in the file, the line)


class Aggregate(TypedDict):
    """A partial or merged aggregate (a plain dict at run time, so it pickles anywhere)."""

    lines: int  # every line read, malformed ones included
    malformed: int
    requests: Counter[str]  # status class ("2xx") -> requests
    bytes: Counter[str]  # status class -> response bytes
    paths: Counter[str]  # path without its query string -> requests
    clients: Counter[str]  # client IP -> requests
    times: dict[str, Counter[int]]  # endpoint -> response time in µs -> requests


# ---- parsing: shared by the workers and the single-process reference --------------

NUMERIC_SEGMENT = re.compile(r"/\d+(?=/|$)")


@functools.lru_cache(maxsize=1 << 16)
def endpoint(method: str, path: str) -> str:
    """``GET /api/items/42`` -> ``GET /api/items/:id``: one endpoint, however many ids."""
    return f"{method} {NUMERIC_SEGMENT.sub('/:id', path)}"


def read_lines(path: str, start: int, end: int) -> tuple[int, str]:
    """The whole lines that start in ``[start, end)``: their first byte offset and their text.

    The line that straddles ``start`` belongs to the previous range and the one
    that straddles ``end`` to this one, so the ranges of a file cover each line
    exactly once. Latin-1 maps each byte to one character, so character offsets
    are byte offsets, and no byte sequence can fail to decode.
    """
    with open(path, "rb") as file:
        if start > 0:
            file.seek(start - 1)
            file.readline()  # the rest of a line that began before start (or just its "\n")
        first = file.tell()
        if first >= end:
            return first, ""
        data = file.read(end - first)
        if not data.endswith(b"\n"):
            data += file.readline()  # the last line began before end: it is ours to its end
    return first, data.decode("latin-1")


def empty_aggregate() -> Aggregate:
    """An aggregate of no lines: the start of a merge."""
    return Aggregate(
        lines=0,
        malformed=0,
        requests=Counter(),
        bytes=Counter(),
        paths=Counter(),
        clients=Counter(),
        times={},
    )


def parse_text(text: str, offset: int) -> tuple[Aggregate, list[Malformed]]:
    """Aggregate the lines of ``text`` (which starts at byte ``offset``); list the bad ones."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # after the final "\n": not a line
    clients, paths, classes, bad = [], [], [], []
    sizes: Counter[str] = Counter()
    times: defaultdict[str, list[int]] = defaultdict(list)
    match = LINE.fullmatch
    for line in lines:
        fields = match(line)
        if fields is None:
            bad.append((offset, line))
        else:
            client, method, target, status, size, micros = fields.groups()
            path = target.partition("?")[0]
            status_class = status[0] + "xx"
            clients.append(client)
            paths.append(path)
            classes.append(status_class)
            if size != "-":  # "-" is how the format writes 0 bytes
                sizes[status_class] += int(size)
            times[endpoint(method, path)].append(int(micros))
        offset += len(line) + 1
    # Counting whole lists runs in C, faster than a Counter update per line.
    aggregate = Aggregate(
        lines=len(lines),
        malformed=len(bad),
        requests=Counter(classes),
        bytes=sizes,
        paths=Counter(paths),
        clients=Counter(clients),
        times={name: Counter(values) for name, values in times.items()},
    )
    return aggregate, bad


def parse_range(path: str, start: int, end: int) -> tuple[Aggregate, list[Malformed]]:
    """Read and parse the lines that start in ``[start, end)`` of ``path``."""
    offset, text = read_lines(path, start, end)
    return parse_text(text, offset)


def merge(total: Aggregate, part: Aggregate) -> Aggregate:
    """Add ``part`` into ``total`` and return it. Addition is all there is, so order is free."""
    total["lines"] += part["lines"]
    total["malformed"] += part["malformed"]
    for key in ("requests", "bytes", "paths", "clients"):
        total[key].update(part[key])
    for name, counts in part["times"].items():
        total["times"].setdefault(name, Counter()).update(counts)
    return total


def why_malformed(line: str) -> str:
    """A short guess at what is wrong with a line that did not parse (rare, so not fast)."""
    if not line.strip():
        return "empty line"
    if any(not " " <= char <= "~" for char in line):
        return "binary data"
    if line.count('"') < 6:
        return "truncated or missing fields"
    return "bad field value"


def shown(line: str) -> str:
    """The line as printable ASCII, with other bytes escaped the way nginx escapes them."""
    return "".join(char if " " <= char <= "~" else f"\\x{ord(char):02x}" for char in line)


# ---- the job: runs in a worker, with a shard as its state --------------------------

SHARD_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    file TEXT, start_byte INTEGER, end_byte INTEGER, lines INTEGER, malformed INTEGER,
    bytes INTEGER, seconds REAL, pid INTEGER
);
CREATE TABLE IF NOT EXISTS malformed (file TEXT, offset INTEGER, reason TEXT, text TEXT);
"""
# Enough to show what went wrong in a chunk without flooding the log; the
# shard holds every malformed line anyway.
WARNINGS_PER_CHUNK = 3
SHOWN_CHARS = 200  # of a malformed line, in its warning (the shard holds it whole)


def open_shard(out_dir: str) -> Iterator[sqlite3.Connection]:
    """Worker init: this worker's own shard database, closed when the worker exits."""
    # One file per process: no two writers ever share a database, so no locking.
    path = Path(out_dir) / f"shard-{os.getpid()}.sqlite"
    connection = sqlite3.connect(path)
    connection.executescript(SHARD_SCHEMA)
    try:
        yield connection
    finally:
        query = "SELECT COUNT(*), COALESCE(SUM(malformed), 0) FROM chunks"
        chunks, malformed = connection.execute(query).fetchone()
        connection.close()
        # Logged in the teardown: it still reaches the caller before shutdown() returns.
        minipool.get_logger(shard=path.name).info(
            "shard closed", chunks=chunks, malformed=malformed
        )


def aggregate_chunk(job: Job) -> Aggregate:
    """A job: parse one byte range, log it, record it in the shard, return its aggregate."""
    path, start, end = job
    began = time.perf_counter()
    offset, text = read_lines(path, start, end)
    aggregate, bad = parse_text(text, offset)
    stats = {
        "lines": aggregate["lines"],
        "malformed": len(bad),
        "bytes": len(text),
        "seconds": round(time.perf_counter() - began, 4),
    }
    file = os.path.basename(path)
    log_chunk(minipool.get_logger(file=file, start=start, end=end), stats, bad)
    shard: sqlite3.Connection = minipool.worker_state()
    with shard:  # one transaction per chunk: a chunk's rows land whole or not at all
        shard.execute(
            "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (file, start, end, *stats.values(), os.getpid()),
        )
        shard.executemany(
            "INSERT INTO malformed VALUES (?, ?, ?, ?)",
            [(file, at, why_malformed(line), shown(line)) for at, line in bad],
        )
    return aggregate


def log_chunk(log: FilteringBoundLogger, stats: dict[str, Any], bad: list[Malformed]) -> None:
    """A warning for each of the chunk's first few malformed lines, then its stats."""
    for offset, line in bad[:WARNINGS_PER_CHUNK]:
        log.warning(
            "malformed line",
            offset=offset,
            reason=why_malformed(line),
            text=shown(line)[:SHOWN_CHARS],
            length=len(line),
        )
    if len(bad) > WARNINGS_PER_CHUNK:
        log.warning("more malformed lines in the shard", count=len(bad) - WARNINGS_PER_CHUNK)
    log.info("chunk parsed", **stats)


def plan_jobs(paths: Iterable[Path], chunk_bytes: int) -> list[Job]:
    """Cut every file into byte ranges of ``chunk_bytes`` (the last one of a file shorter)."""
    jobs = []
    for path in paths:
        size = path.stat().st_size
        for start in range(0, size, chunk_bytes):
            jobs.append((str(path), start, min(start + chunk_bytes, size)))
    return jobs


def aggregate_parallel(pool: minipool.Pool, jobs: list[Job], progress: bool) -> Aggregate:
    """Run every job on ``pool`` and merge the partial aggregates as they come."""
    # chunksize=1: a job is already megabytes of work. ordered=False: merging is
    # order-free, so take each result as soon as it is ready.
    parts = pool.map(aggregate_chunk, jobs, chunksize=1, ordered=False, progress=progress)
    return functools.reduce(merge, parts, empty_aggregate())


def aggregate_reference(paths: Iterable[Path]) -> Aggregate:
    """The same parsing in this process, a whole file at a time.

    Whole files have no job boundaries at all, so a line that the parallel run
    lost or counted twice at a boundary shows up as a difference.
    """
    total = empty_aggregate()
    for path in paths:
        merge(total, parse_range(str(path), 0, path.stat().st_size)[0])
    return total


class JsonLinesSink:
    """A ``log_sink``: writes each worker event as one JSON line.

    The pool calls it in this process, from its master thread, one event at a
    time; it must be quick, since the master waits for it.
    """

    FIRST = ("timestamp", "level", "event", "worker_id", "pid", "job_id")

    def __init__(self, path: Path) -> None:
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self.counts: Counter[str] = Counter()  # events per level

    def __call__(self, event: dict[str, Any]) -> None:
        # Who and when first, whatever the job bound; the time as ISO 8601 for people.
        first = {key: event.get(key) for key in self.FIRST}
        first["timestamp"] = datetime.datetime.fromtimestamp(
            first["timestamp"] or 0, datetime.timezone.utc
        ).isoformat(timespec="microseconds")
        rest = {key: value for key, value in event.items() if key not in first}
        self._file.write(json.dumps({**first, **rest}, default=str) + "\n")
        self.counts[str(first["level"])] += 1

    def close(self) -> None:
        self._file.close()


# ---- the report -------------------------------------------------------------------

PERCENTILES = (50, 95, 99)


def percentiles(counts: Counter[int], ranks: Iterable[int] = PERCENTILES) -> tuple[int, ...]:
    """Exact nearest-rank percentiles of counted values: the smallest value covering p%."""
    total = sum(counts.values())
    targets = [-(-total * rank // 100) for rank in ranks]  # ceil without floats
    found: list[int] = []
    seen = 0
    for value, count in sorted(counts.items()):
        seen += count
        while len(found) < len(targets) and seen >= targets[len(found)]:
            found.append(value)
    return tuple(found)


@dataclass(frozen=True)
class Report:
    """What is printed: derived from an aggregate alone, so equal aggregates print alike."""

    lines: int
    malformed: int
    status: list[tuple[str, int, int]]  # (class, requests, bytes)
    paths: list[tuple[str, int]]
    clients: list[tuple[str, int]]
    endpoints: list[tuple[str, int, tuple[int, ...]]]  # (endpoint, requests, percentiles)


def top(counts: Counter[str], n: int) -> list[tuple[str, int]]:
    """The ``n`` largest counts; ties broken by key, so the order is always the same."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]


def build_report(aggregate: Aggregate, n: int) -> Report:
    """Turn an aggregate into the numbers the report shows."""
    classes = sorted(aggregate["requests"])
    endpoints = sorted(aggregate["times"].items(), key=lambda item: (-item[1].total(), item[0]))
    endpoints = endpoints[:n]
    return Report(
        lines=aggregate["lines"],
        malformed=aggregate["malformed"],
        status=[(c, aggregate["requests"][c], aggregate["bytes"][c]) for c in classes],
        paths=top(aggregate["paths"], n),
        clients=top(aggregate["clients"], n),
        endpoints=[(name, counts.total(), percentiles(counts)) for name, counts in endpoints],
    )


def render(report: Report) -> str:
    """The report as text."""
    requests = report.lines - report.malformed
    out = [
        f"{report.lines:,} lines: {requests:,} requests, {report.malformed:,} malformed "
        f"({report.malformed / max(report.lines, 1):.3%})",
        "",
        f"{'status':<8}{'requests':>12}{'share':>9}{'bytes':>16}",
    ]
    for status_class, count, size in report.status:
        out.append(f"{status_class:<8}{count:>12,}{count / requests:>9.2%}{size:>16,}")
    out += ["", f"{'top paths':<40}{'requests':>12}"]
    out += [f"{path:<40}{count:>12,}" for path, count in report.paths]
    out += ["", f"{'top clients':<40}{'requests':>12}"]
    out += [f"{client:<40}{count:>12,}" for client, count in report.clients]
    out += [
        "",
        f"{'endpoint':<34}{'requests':>10}" + "".join(f"{f'p{p} ms':>10}" for p in PERCENTILES),
    ]
    for name, count, values in report.endpoints:
        out.append(f"{name:<34}{count:>10,}" + "".join(f"{v / 1000:>10.3f}" for v in values))
    return "\n".join(out)


def prepare_output(out: Path, log_file: Path) -> None:
    """An output directory without the shards of an earlier run, and an empty log file."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("shard-*.sqlite"):
        old.unlink()
    log_file.parent.mkdir(parents=True, exist_ok=True)


def read_shards(out: Path) -> tuple[int, int, int]:
    """How many shards, chunk rows and malformed rows the workers wrote."""
    shards = chunks = malformed = 0
    for path in sorted(out.glob("shard-*.sqlite")):
        with contextlib.closing(sqlite3.connect(path)) as shard:
            chunks += shard.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            malformed += shard.execute("SELECT COUNT(*) FROM malformed").fetchone()[0]
        shards += 1
    return shards, chunks, malformed


def positive(text: str) -> int:
    """An argparse type: a whole number, 1 or more."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add(
        "--dir",
        type=Path,
        help="where the logs are generated, or reused by a later run (default: a temporary "
        "directory, removed at the end)",
    )
    add("--lines", type=positive, default=2_000_000, help="lines in all (default 2,000,000)")
    add("--files", type=positive, default=8, help="log files (default 8)")
    add("--seed", type=int, default=2026, help="generator seed (default 2026)")
    add("--workers", type=positive, default=None, help="default: one per CPU")
    add("--chunk-bytes", type=positive, default=4 << 20, help="log per job (default 4 MiB)")
    add("--out", type=Path, help="shard directory (default: a temporary one, removed at the end)")
    add("--log-file", type=Path, help="worker events as JSON lines (default OUT/events.jsonl)")
    add("--top", type=positive, default=10, help="paths, clients, endpoints listed (default 10)")
    add("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def run_parallel(
    jobs: list[Job], out: Path, log_file: Path, workers: int | None, progress: bool
) -> tuple[Aggregate, int, str]:
    """The parallel run: its aggregate, how many workers ran it, and what they logged."""
    sink = JsonLinesSink(log_file)
    try:
        with minipool.Pool(workers, init=open_shard, init_args=(str(out),), log_sink=sink) as pool:
            aggregate = aggregate_parallel(pool, jobs, progress)
    finally:
        sink.close()  # the pool has shut down: no event can arrive any more
    events = ", ".join(f"{count} {level}" for level, count in sorted(sink.counts.items()))
    return aggregate, pool.workers, f"{log_file} ({events or 'none'})"


def check(parallel: Aggregate, reference: Aggregate, jobs: list[Job], out: Path) -> list[str]:
    """What disagrees: the two runs, or the shards with the jobs and the malformed count."""
    shards, chunk_rows, malformed_rows = read_shards(out)
    print(f"shards: {shards} in {out}, {chunk_rows} chunks, {malformed_rows} malformed lines")
    problems = []
    if parallel != reference:
        problems.append("the parallel aggregate differs from the single-process one")
    if (chunk_rows, malformed_rows) != (len(jobs), parallel["malformed"]):
        problems.append(
            f"the shards hold {chunk_rows} chunks and {malformed_rows} malformed "
            f"lines, expected {len(jobs)} and {parallel['malformed']}"
        )
    return problems


def main(argv: list[str] | None = None) -> int:
    """Generate (or reuse) the logs, aggregate them twice, report; 1 if the runs disagree.

    What the user did not give a directory for (the logs, the shards) lives in a
    temporary directory that is removed at the end, whatever happens.
    """
    args = parse_args(argv)
    with contextlib.ExitStack() as temporary:
        logs = args.dir or Path(temporary.enter_context(tempfile.TemporaryDirectory("-logs")))
        out = args.out or Path(temporary.enter_context(tempfile.TemporaryDirectory("-shards")))
        return run(args, logs, out)


def run(args: argparse.Namespace, logs: Path, out: Path) -> int:
    """The demo over ``logs`` (generated or reused), its shards in ``out``."""
    paths = generate_logs(logs, args.lines, args.files, args.seed, args.workers)
    log_file = args.log_file or out / "events.jsonl"
    prepare_output(out, log_file)
    jobs = plan_jobs(paths, args.chunk_bytes)

    began = time.perf_counter()  # the pool's start and shutdown count against it
    parallel, workers, events = run_parallel(
        jobs, out, log_file, args.workers, progress=not args.no_progress
    )
    parallel_seconds = time.perf_counter() - began
    began = time.perf_counter()
    reference = aggregate_reference(paths)
    reference_seconds = time.perf_counter() - began

    print(render(build_report(parallel, args.top)))
    print(
        f"\nparallel: {len(jobs)} jobs on {workers} workers in {parallel_seconds:.2f} s; "
        f"one process: {reference_seconds:.2f} s; "
        f"speedup {reference_seconds / parallel_seconds:.2f}x"
    )
    print(f"worker events: {events}")
    problems = check(parallel, reference, jobs, out)
    for problem in problems:
        print(f"MISMATCH: {problem}")
    if not problems:
        print("the parallel and single-process reports are identical")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
