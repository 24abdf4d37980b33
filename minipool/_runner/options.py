"""What a run was asked to do, and how it can end (its exit statuses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_USAGE = 2
EXIT_INIT_FAILED = 3
EXIT_HALTED = 4
EXIT_INTERRUPTED = 130
EXIT_OUTPUT_CLOSED = 141  # as a shell reports a process that SIGPIPE ended


class InitFailed(Exception):
    """``--init`` failed in a worker: no record can run; exit 3 with this one-line message."""


# --halt P%: a fraction is judged once this many records have finished, so
# that the first record failing is not "100% failed". GNU parallel waits for 3;
# 10 keeps a run over a few bad records at its head from halting on them.
HALT_FRACTION_AFTER = 10


@dataclass(frozen=True)
class Halt:
    """``--halt``: stop dispatching once ``failures`` records failed, or once ``fraction``
    of those finished did."""

    failures: int | None = None
    fraction: float | None = None

    def reached(self, failed: int, finished: int) -> bool:
        if self.failures is not None:
            return failed >= self.failures
        assert self.fraction is not None
        return finished >= HALT_FRACTION_AFTER and failed >= self.fraction * finished

    def __str__(self) -> str:
        return f"{self.failures}" if self.fraction is None else f"{self.fraction * 100:g}%"


@dataclass(frozen=True)
class RunOptions:
    target: str
    input: str | None
    format: str | None
    output: str | None
    workers: int | None
    init: str | None
    init_args: tuple[Any, ...]
    timeout: float | None
    retries: int
    resume: bool
    resume_failed: bool
    ordered: bool
    log_file: str | None
    log_format: str
    log_level: str
    progress: bool | None
    start_method: str | None
    cluster: str | None = None
    halt: Halt | None = None
    dry_run: bool = False
    joblog: str | None = None
