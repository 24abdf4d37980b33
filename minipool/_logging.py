"""The caller's end of worker logging: which levels to ship, and where events go.

    worker (see _log_shipping)                 caller, in the master thread
    ──────────────────────────                 ────────────────────────────
    LOGS frame on the results pipe ──────────► LogRouter.deliver ─┬─► log_sink(event dict)
    a dead worker's LogSpill       ──────────►                    └─► caller's structlog (logger
                                                                      "minipool.worker") and
                                                                      logging (the record's logger)

Events are delivered in the master thread, before the outcome that followed
them on the pipe: when a job's future resolves, everything it logged has
gone through the caller's logging. Workers pickle only events at levels the
caller would keep (``LogLevels``, taken each time a worker starts).
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from . import _context
from ._messages import decode_events

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

# structlog is imported where it is first needed, not with minipool: it
# brings asyncio along and tripled the time `import minipool` took.

# The structlog logger name worker events are logged under in the caller, and
# whose level decides which structlog events workers ship.
WORKER_LOGGER = "minipool.worker"

# Event kinds on the wire.
STRUCTLOG_EVENT = 0
LOGGING_RECORD = 1

LogSink = Callable[[dict[str, Any]], object]

# A stdlib record on the wire: ``(message, exc_text, values, extras)``, with
# ``values`` the record's RECORD_KEYS attributes by position, and ``extras``
# what ``extra=`` or a filter added (or None). A record's whole dict, pickled
# per event, repeated its 21 key names every time: 2.7 us and 380 bytes a
# record, against 0.6 us and 160 bytes by position. ``taskName`` (3.12+)
# comes last, so a worker and a caller on different Pythons (Dask) still agree.
RECORD_KEYS = (
    "name",
    "levelname",
    "levelno",
    "pathname",
    "filename",
    "module",
    "lineno",
    "funcName",
    "created",
    "msecs",
    "relativeCreated",
    "thread",
    "threadName",
    "processName",
    "process",
    "stack_info",
    *(("taskName",) if sys.version_info >= (3, 12) else ()),
)
_NAME, _LEVELNAME, _CREATED = (RECORD_KEYS.index(key) for key in ("name", "levelname", "created"))


def get_logger(**bind: Any) -> FilteringBoundLogger:
    """A structlog logger, with ``bind`` bound, whose events reach the caller.

    In a job (or ``init``) its events travel to the caller's process with
    ``worker_id``, ``pid``, ``job_id``, ``level`` and ``timestamp`` added, and
    come out through the caller's structlog configuration (as logger
    ``"minipool.worker"``) or the pool's ``log_sink``. Outside a worker it is
    the caller's own structlog logger, so that the same code runs unchanged
    in one process.
    """
    context = _context.current()
    if context is None or context.logger is None:
        import structlog

        return cast("FilteringBoundLogger", structlog.get_logger(WORKER_LOGGER, **bind))
    return cast("FilteringBoundLogger", context.logger.bind(**bind))


@dataclass(frozen=True, slots=True)
class LogLevels:
    """The caller's logging levels, as a worker needs them to filter before shipping."""

    structlog: int
    root: int
    # (name, level, propagate) of each stdlib logger with a level of its own or
    # that does not propagate.
    loggers: tuple[tuple[str, int, bool], ...]


def worker_levels(log_level: int | None) -> LogLevels:
    """The caller's levels now, or ``log_level`` for every logger."""
    loggers = tuple(
        (name, logger.level, logger.propagate)
        for name, logger in list(logging.root.manager.loggerDict.items())
        if isinstance(logger, logging.Logger)
        and (logger.level != logging.NOTSET or not logger.propagate)
    )
    if log_level is None:
        return LogLevels(_structlog_level(), logging.root.level, loggers)
    # A logger's own level must not hide what log_level asks for.
    inherit = tuple((name, logging.NOTSET, propagate) for name, _, propagate in loggers)
    return LogLevels(log_level, log_level, inherit)


def check_log_level(log_level: int | str | None) -> int | None:
    """``log_level`` as a number; a clear error for a name logging does not know."""
    if log_level is None or (isinstance(log_level, int) and not isinstance(log_level, bool)):
        return log_level
    level = logging.getLevelName(str(log_level).upper()) if isinstance(log_level, str) else None
    if not isinstance(level, int):
        raise ValueError(
            f"log_level must be a logging level such as logging.INFO or 'info', got {log_level!r}"
        )
    return level


def _structlog_level() -> int:
    """The level below which the caller's structlog drops ``minipool.worker`` events."""
    if "structlog" not in sys.modules:
        return logging.NOTSET  # never configured: structlog's default drops nothing
    import structlog

    logger = structlog.get_logger(WORKER_LOGGER).bind()
    # Looked up on the class: a plain structlog.BoundLogger answers every name.
    for name in ("get_effective_level", "getEffectiveLevel"):
        if getattr(type(logger), name, None) is not None:
            return int(getattr(logger, name)())
    return logging.NOTSET


class LogRouter:
    """Delivers worker events in the caller: to ``log_sink``, or through the caller's logging."""

    def __init__(self, sink: LogSink | None) -> None:
        self._sink = sink
        self._failed = False

    def deliver(self, worker_id: Any, pid: int, payload: bytes | memoryview) -> None:
        """Deliver each event of a ``LOGS`` payload; never raises into the master loop."""
        route = self._to_sink if self._sink is not None else _CallerLogging().route
        for decoded in decode_events(payload):
            if isinstance(decoded, BaseException):
                decoded = (STRUCTLOG_EVENT, None, _unreadable(decoded, worker_id))
            kind, job_id, event = decoded
            try:
                route(kind, job_id, event, worker_id, pid)
            except BaseException:  # the user's sink or handler; even SystemExit must not end us
                self._report_failure()

    def _to_sink(self, kind: int, job_id: int | None, event: Any, worker_id: int, pid: int) -> None:
        assert self._sink is not None
        self._sink(as_event_dict(kind, job_id, event, worker_id, pid))

    def _report_failure(self) -> None:
        # Once per pool: a broken sink would otherwise print a traceback per event.
        if not self._failed:
            self._failed = True
            where = "log_sink" if self._sink is not None else "the caller's logging configuration"
            print(
                f"minipool: {where} raised while handling a worker's log event; that "
                "event is lost, and later failures are not reported:",
                file=sys.stderr,
            )
            traceback.print_exc()


class _CallerLogging:
    """Routes one payload's events through the caller's structlog and logging.

    It looks each logger up once per payload, not once per event, and again
    for the next payload: the caller may reconfigure logging at any time.
    """

    def __init__(self) -> None:
        self._structlog: Any = None
        self._loggers: dict[str, logging.Logger] = {}

    def route(self, kind: int, job_id: int | None, event: Any, worker_id: int, pid: int) -> None:
        if kind == LOGGING_RECORD:
            self._log_record(event, job_id, worker_id)
        else:
            self._log_structlog(event, job_id, worker_id, pid)

    def _log_structlog(
        self, fields: dict[str, Any], job_id: int | None, worker_id: int, pid: int
    ) -> None:
        if self._structlog is None:
            import structlog

            self._structlog = structlog.get_logger(WORKER_LOGGER).bind()
        fields["job_id"] = job_id
        fields["worker_id"] = worker_id
        fields["pid"] = pid
        method = getattr(self._structlog, fields.pop("level", "info"), self._structlog.info)
        method(fields.pop("event", None), **fields)

    def _log_record(self, event: Any, job_id: int | None, worker_id: int) -> None:
        message, exc_text, values, extras = event
        # Not strict (and strict=False cost 0.4 us a record): a worker on another
        # Python may send one key more or fewer (taskName).
        fields = dict(zip(RECORD_KEYS, values))  # noqa: B905
        if extras:
            fields.update(extras)
        # Item by item: update(msg=..., ...) cost 0.3 us more.
        fields["msg"] = message
        fields["args"] = fields["exc_info"] = None
        fields["exc_text"] = exc_text
        fields["job_id"] = job_id
        fields["worker_id"] = worker_id
        # The fields are a whole record's, so LogRecord.__init__ (half the cost
        # of delivering a record) has nothing to add; unpickling one skips it too.
        record = logging.LogRecord.__new__(logging.LogRecord)
        record.__dict__ = fields
        logger = self._loggers.get(record.name)
        if logger is None:
            logger = self._loggers[record.name] = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


def as_event_dict(
    kind: int, job_id: int | None, event: Any, worker_id: int | None, pid: int
) -> dict[str, Any]:
    """An event as ``log_sink`` gets it: structlog's own dict, or a record made one."""
    if kind == STRUCTLOG_EVENT:
        event["job_id"] = job_id
        event["worker_id"] = worker_id
        event["pid"] = pid
        return cast("dict[str, Any]", event)
    message, exc_text, values, extras = event
    fields = {
        "event": message,
        "level": str(values[_LEVELNAME]).lower(),
        "logger": values[_NAME],
        "timestamp": values[_CREATED],
        "worker_id": worker_id,
        "pid": pid,
        "job_id": job_id,
    }
    if exc_text:
        fields["exception"] = exc_text
    for key, value in (extras or {}).items():
        fields.setdefault(key, value)
    return fields


def _unreadable(error: BaseException, worker_id: int) -> dict[str, Any]:
    return {
        "event": (
            f"a log event from worker {worker_id} could not be unpickled in the caller "
            f"({type(error).__name__}: {error}); log values whose classes the caller can import"
        ),
        "level": "error",
        "timestamp": time.time(),
        "job_id": None,
    }
