"""The worker's end of logging: structlog events and stdlib records, shipped to the caller.

``install`` runs in each worker before ``init``:

- structlog: ``minipool.get_logger()`` (and ``structlog.get_logger()``, unless
  ``init`` configures structlog otherwise) runs a short chain — context
  variables, level, timestamp, exception text — and ships the event dict.
- stdlib logging: the handlers the worker inherited are dropped (under fork
  they are the caller's own, and would write every record twice: here and
  again in the caller); one ``ShippingHandler`` on the root logger, and on
  each logger that does not propagate, ships records instead.
- levels: the caller's (``_logging.LogLevels``), so that an event the caller
  would drop is never even pickled.

Every event goes to the ``ship`` the backend gives: on the process pool,
``processes.sender.Sender.ship``, which keeps events in the worker's
``LogSpill`` and writes them to the results pipe just before the outcomes (so
a job's events reach the caller before its result does), when the spill is
full, and when its oldest event is ``LOG_FLUSH_SECONDS`` old, so a long job's
events arrive while it runs; on Dask, with the job's outcome.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable
from typing import Any

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, WrappedLogger

from ._logging import LOGGING_RECORD, RECORD_KEYS, STRUCTLOG_EVENT, LogLevels

# How long a logged event may wait for others to share its write. Longer
# batches more under a steady trickle; shorter shows a long job's events sooner.
LOG_FLUSH_SECONDS = 0.1

# (kind, event): a structlog event dict, or a record's tuple (see _logging.RECORD_KEYS)
Ship = Callable[[int, Any], None]


def install(levels: LogLevels, ship: Ship, *, own_process: bool = True) -> FilteringBoundLogger:
    """Route this worker's logging to ``ship``; return the logger ``get_logger`` binds.

    ``own_process=False`` (a Dask worker, whose process is not ours) keeps the
    handlers already there and adds the shipping one beside them.
    """
    _route_stdlib_logging(levels, ShippingHandler(ship), own_process)
    return _configure_structlog(levels.structlog, ship)


class ShippingHandler(logging.Handler):
    """Ships each record, with its message formatted and its traceback as text."""

    def __init__(self, ship: Ship) -> None:
        super().__init__()
        self._ship = ship

    def handle(self, record: logging.LogRecord) -> Any:
        """``Handler.handle`` without its lock, taken per record for nothing (about 0.4 us
        of 9): ``ship`` takes its own."""
        shipped = self.filter(record)
        if shipped:
            # 3.12+: a filter may return the record to ship in place of this one.
            self.emit(shipped if isinstance(shipped, logging.LogRecord) else record)
        return shipped

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._ship(LOGGING_RECORD, _record_event(record))
        except Exception:
            self.handleError(record)


_formatter = logging.Formatter()
_record_values = operator.attrgetter(*RECORD_KEYS)
_PLAIN_RECORD = frozenset(vars(logging.makeLogRecord({})))
_PLAIN_SIZE = len(_PLAIN_RECORD)
_NOT_EXTRA = _PLAIN_RECORD | {"message", "asctime"}  # what formatting a record adds


def _record_event(record: logging.LogRecord) -> tuple[Any, ...]:
    """The record as it travels (see ``_logging.RECORD_KEYS``): its arguments merged into
    its message, its traceback as text."""
    exc_text = record.exc_text
    if record.exc_info and not exc_text:
        exc_text = _formatter.formatException(record.exc_info)
    fields = vars(record)
    extras = None
    if len(fields) > _PLAIN_SIZE:  # the common case has no extra, and pays nothing for it
        extras = {key: value for key, value in fields.items() if key not in _NOT_EXTRA} or None
    return (record.getMessage(), exc_text, _record_values(record), extras)


def _route_stdlib_logging(levels: LogLevels, handler: logging.Handler, own_process: bool) -> None:
    root = logging.getLogger()
    for logger in [root, *list(root.manager.loggerDict.values())]:
        if own_process and isinstance(logger, logging.Logger):
            logger.handlers.clear()
    root.setLevel(levels.root)
    root.addHandler(handler)
    for name, level, propagate in levels.loggers:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = propagate
        if not propagate:
            logger.addHandler(handler)


class _ShippingLogger:
    """The logger at the end of the worker's structlog chain: ships the event dict."""

    def __init__(self, ship: Ship) -> None:
        self._ship = ship

    def msg(self, event_dict: EventDict) -> None:
        self._ship(STRUCTLOG_EVENT, event_dict)

    debug = info = warning = warn = error = critical = fatal = exception = log = msg


def _add_timestamp(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    event_dict["timestamp"] = time.time()
    return event_dict


def _as_one_argument(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> tuple[tuple[EventDict], dict[str, Any]]:
    return (event_dict,), {}


def _configure_structlog(level: int, ship: Ship) -> FilteringBoundLogger:
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_timestamp,
        structlog.processors.format_exc_info,  # a live traceback does not pickle
        _as_one_argument,
    ]
    wrapper_class = structlog.make_filtering_bound_logger(level)
    shipping_logger = _ShippingLogger(ship)
    structlog.configure(
        processors=processors,
        wrapper_class=wrapper_class,
        context_class=dict,
        logger_factory=lambda *args: shipping_logger,
        cache_logger_on_first_use=False,
    )
    # bind() turns wrap_logger's lazy proxy into the logger itself, once.
    logger: FilteringBoundLogger = structlog.wrap_logger(
        shipping_logger, processors, wrapper_class=wrapper_class, context_class=dict
    ).bind()
    return logger
