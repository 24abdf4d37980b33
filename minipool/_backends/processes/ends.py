"""How a worker's end reads for users: the error of the job it died running, of an init
that failed, and how the process ended, in words ("was killed by SIGKILL (often the
out-of-memory killer)")."""

from __future__ import annotations

import signal

from ..._errors import INIT_ADVICE, InitError, TaskTimeout, WorkerCrashed
from ..._pickling import loads, rebuild_exception
from .start_method import EXIT_MAIN_CREATES_POOL

# What a signal that killed a worker most often means.
_SIGNAL_HINTS = {
    signal.SIGKILL: " (often the out-of-memory killer)",
    signal.SIGSEGV: " (a crash in native code)",
    signal.SIGBUS: " (a crash in native code)",
    signal.SIGABRT: " (an abort in native code)",
}


def init_error(slot: int, pid: int, payload: memoryview) -> InitError:
    """What an ``INIT_FAILED`` frame says: the init's own exception, as the cause."""
    cause = rebuild_exception(loads(payload))
    error = InitError(
        f"init failed in worker {slot} (pid {pid}): {type(cause).__name__}: {cause}. {INIT_ADVICE}",
        worker_id=slot,
    )
    error.__cause__ = cause
    return error


def init_failure(slot: int, pid: int, exitcode: int | None) -> InitError:
    """A worker ended in its init without saying why."""
    if exitcode == EXIT_MAIN_CREATES_POOL:
        return InitError(
            f"worker {slot} (pid {pid}) could not start: importing the "
            "caller's __main__ again, as workers that are not forked do, created "
            "another Pool. Put the code that creates the pool under "
            "if __name__ == \"__main__\":, or pass start_method='fork'.",
            worker_id=slot,
        )
    how, _ = describe_exit(exitcode)
    return InitError(
        f"worker {slot} (pid {pid}) {how} while running init. {INIT_ADVICE}",
        worker_id=slot,
    )


def timeout_error(slot: int, pid: int, job_id: int, timeout: float) -> TaskTimeout:
    """The master killed the worker because ``job_id`` overran its ``task_timeout``."""
    return TaskTimeout(
        f"job {job_id} ran longer than task_timeout={timeout:g} s in worker "
        f"{slot} (pid {pid}); the worker was killed and replaced",
        job_id=job_id,
        seconds=timeout,
    )


def crash_error(slot: int, pid: int, exitcode: int | None, job_id: int) -> WorkerCrashed:
    """The worker died while running ``job_id``."""
    how, signal_name = describe_exit(exitcode)
    return WorkerCrashed(
        f"worker {slot} (pid {pid}) {how} while running job {job_id}; "
        "the pool replaced it and runs on",
        job_id=job_id,
        worker_id=slot,
        pid=pid,
        exitcode=exitcode,
        signal=signal_name,
    )


def describe_exit(exitcode: int | None) -> tuple[str, str | None]:
    """How the process ended, in words, and the signal name if one killed it."""
    if exitcode is None:
        return "exited", None
    if exitcode < 0:
        try:
            number = signal.Signals(-exitcode)
        except ValueError:
            return f"was killed by signal {-exitcode}", str(-exitcode)
        return f"was killed by {number.name}{_SIGNAL_HINTS.get(number, '')}", number.name
    return f"exited with code {exitcode}", None
