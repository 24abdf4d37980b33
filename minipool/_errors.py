"""The exceptions minipool raises in the caller.

    Exception
     ├── PoolError                 base of every error minipool itself reports
     │    ├── RemoteError          a job's exception or result could not cross the pipe
     │    ├── WorkerCrashed        the worker died while it held the job
     │    ├── InitError            ``init`` failed in a worker; the pool is broken
     │    └── TaskTimeout          (also a ``TimeoutError``) the job overran ``task_timeout``
     └── (the job's own exception, re-raised with its own type)

A job's own exception keeps its type; the worker's traceback text hangs off it
as ``__cause__`` (a ``RemoteTraceback``), as in ``concurrent.futures``.

Every class here keeps its fields as attributes and defines ``__reduce__`` so
that it survives pickling: users ship these errors between processes too.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see __init__)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "InitError",
    "PoolError",
    "RemoteError",
    "RemoteTraceback",
    "TaskTimeout",
    "WorkerCrashed",
]


class PoolError(Exception):
    """Base class of the errors minipool reports about jobs and workers."""


class RemoteTraceback(Exception):
    """The traceback text of an exception raised in a worker.

    Attached as ``__cause__`` so that the caller's traceback shows where in the
    worker the job failed.
    """

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


class RemoteError(PoolError):
    """A job's exception or result could not be sent back from the worker.

    Raised in place of an exception or result that fails to pickle or to
    unpickle; ``type_name``, ``message`` and ``traceback`` describe what the
    worker had.
    """

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        super().__init__(type_name, message, traceback)
        self.type_name = type_name
        self.message = message
        self.traceback = traceback

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.type_name, self.message, self.traceback))


class WorkerCrashed(PoolError):
    """The worker process died while it was running (or receiving) this job.

    The pool replaces the worker and goes on; the other jobs are unaffected.
    """

    def __init__(
        self,
        message: str,
        *,
        job_id: int | None = None,
        worker_id: int | None = None,
        pid: int | None = None,
        exitcode: int | None = None,
        signal: str | None = None,
    ) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.worker_id = worker_id
        self.pid = pid
        self.exitcode = exitcode
        self.signal = signal

    def __reduce__(self) -> tuple[Any, ...]:
        fields = {
            "job_id": self.job_id,
            "worker_id": self.worker_id,
            "pid": self.pid,
            "exitcode": self.exitcode,
            "signal": self.signal,
        }
        return (_rebuild, (type(self), (str(self),), fields))


# How every message of an InitError from a local pool ends (the runner, which
# does not create pools, leaves it out).
INIT_ADVICE = "No job can run; fix init and create a new Pool."


class InitError(PoolError):
    """``init`` raised (or its process died) in a worker, so the pool cannot run jobs.

    The init traceback is attached as ``__cause__``. Fix ``init`` and create a
    new pool.
    """

    def __init__(self, message: str, *, worker_id: int | None = None) -> None:
        super().__init__(message)
        self.worker_id = worker_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (str(self),), {"worker_id": self.worker_id}))


class TaskTimeout(PoolError, TimeoutError):
    """The job ran longer than ``task_timeout``; its worker was replaced."""

    def __init__(self, message: str, *, job_id: int | None = None, seconds: float | None = None):
        super().__init__(message)
        self.job_id = job_id
        self.seconds = seconds

    def __reduce__(self) -> tuple[Any, ...]:
        fields = {"job_id": self.job_id, "seconds": self.seconds}
        return (_rebuild, (type(self), (str(self),), fields))


def _rebuild(cls: type[Exception], args: tuple[Any, ...], fields: dict[str, Any]) -> Exception:
    error = cls(*args)
    error.__dict__.update(fields)
    return error


def note_attempts(error: BaseException, attempts: int) -> None:
    """Say on ``error`` that its job failed on each of ``attempts`` runs (``retries``)."""
    note = f"minipool: the job failed on each of its {attempts} attempts; this is the last error"
    if hasattr(error, "add_note"):
        error.add_note(note)
    else:  # Python 3.10: the PEP 678 attribute, which tracebacks there do not show
        error.__notes__ = [*getattr(error, "__notes__", []), note]  # type: ignore[attr-defined]


def copy_error(error: PoolError) -> PoolError:
    """A fresh instance of ``error`` with its fields and cause, to raise again elsewhere."""
    copy = type(error)(*error.args)
    copy.__dict__.update(error.__dict__)
    copy.__cause__ = error.__cause__
    return copy
