"""``--joblog PATH``: one tab-separated line per record, as GNU parallel's ``--joblog``.

The facts of a record's run (when it started, how long it took, which
attempt it was, where it ran) are taken in the worker (``job``) and travel
back with its line, or with its exception. A record whose worker died has
only the worker's id and pid, from its ``WorkerCrashed`` or ``TaskTimeout``;
a column nobody knows is ``-``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from .output import LineWriter

HEADER = "index\tstart\truntime\tattempts\tworker\tpid\toutcome"
# Where a record's exception carries its facts back from the worker.
FACTS_ATTRIBUTE = "_minipool_record_facts"


class JobFacts(NamedTuple):
    start: float  # time.time() in the worker as the function was called
    runtime: float  # seconds
    attempt: int  # 1 on its first run
    worker_id: int
    pid: int


def facts_of(error: BaseException) -> JobFacts | None:
    """The facts an exception brought back from its worker, if it could."""
    facts = getattr(error, FACTS_ATTRIBUTE, None)
    return JobFacts(*facts) if isinstance(facts, tuple) and len(facts) == 5 else None


class JobLog:
    """Writes the job log's lines through a ``LineWriter``: a batch per system call."""

    def __init__(self, fd: int, new: bool) -> None:
        self._writer = LineWriter(fd)
        if new:
            self._writer.write([HEADER])

    def write(self, entries: Iterable[tuple[int, JobFacts | None, Any, str]]) -> None:
        """Lines for ``(index, facts, error or None, outcome)`` entries."""
        self._writer.write([_line(*entry) for entry in entries])


def _line(index: int, facts: JobFacts | None, error: Any, outcome: str) -> str:
    if facts is not None:
        start, runtime = f"{facts.start:.3f}", f"{facts.runtime:.3f}"
        attempt, worker, pid = str(facts.attempt), str(facts.worker_id), str(facts.pid)
    else:
        start = runtime = attempt = "-"
        worker = _field(error, "worker_id")
        pid = _field(error, "pid")
    return f"{index}\t{start}\t{runtime}\t{attempt}\t{worker}\t{pid}\t{outcome}"


def _field(error: Any, name: str) -> str:
    value = getattr(error, name, None)
    return "-" if value is None else str(value)
