"""What a run tells a person about a record's error, or an init that failed."""

from __future__ import annotations

import re

from .._errors import INIT_ADVICE, InitError, PoolError, RemoteTraceback
from .options import InitFailed
from .output import error_line


def init_failed(error: InitError, init: str | None) -> InitFailed:
    """One line for a person: which init, how it failed, where in their code."""
    text = str(error).removesuffix(INIT_ADVICE).rstrip(" .;")
    where = _last_frame(error.__cause__)
    return InitFailed(
        f"--init {init}: {text.splitlines()[0] if text else type(error).__name__}"
        f"{where}; no record ran. Fix it, then run the same command again."
    )


_FRAME_LINE = re.compile(r'^  File "(.*)", line (\d+), in (.*)$', re.MULTILINE)


def _last_frame(cause: BaseException | None) -> str:
    """`` (file.py, line 12, in setup)``: where the worker's traceback of ``cause`` ends."""
    trace = cause.__cause__ if cause is not None else None
    if not isinstance(trace, RemoteTraceback):
        return ""
    frames = _FRAME_LINE.findall(trace.tb)
    if not frames:
        return ""
    path, line, function = frames[-1]
    return f" ({path}, line {line}, in {function})"


def exception_line(index: int, error: BaseException) -> str:
    cause = error.__cause__
    trace = cause.tb if isinstance(cause, RemoteTraceback) else ""
    return error_line(index, type(error).__name__, message_for_record(error, index), trace)


def message_for_record(error: BaseException, index: int) -> str:
    """``str(error)`` as a runner's user reads it: the pool's messages name the record, not
    the pool's job id, and its notes (the attempts a retried record took) follow."""
    message = str(error)
    job_id = getattr(error, "job_id", None)
    if isinstance(error, PoolError) and job_id is not None:
        message = message.replace(f"job {job_id}", f"record {index}")
        message = message.replace("task_timeout=", "--timeout ")
    notes = [
        note.replace("the job ", "the record ") if note.startswith("minipool:") else note
        for note in map(str, getattr(error, "__notes__", ()))
    ]
    return "\n".join([message, *notes])
