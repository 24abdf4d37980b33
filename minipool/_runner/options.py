"""What a run was asked to do, and how it can end (its exit statuses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_USAGE = 2
EXIT_INIT_FAILED = 3
EXIT_INTERRUPTED = 130
EXIT_OUTPUT_CLOSED = 141  # as a shell reports a process that SIGPIPE ended


class InitFailed(Exception):
    """``--init`` failed in a worker: no record can run; exit 3 with this one-line message."""


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
