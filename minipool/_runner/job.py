"""In the worker: one record in, its output line out (or the function's own exception)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from typing import Any

from .. import _context
from .joblog import FACTS_ATTRIBUTE, JobFacts
from .output import error_line, result_line
from .records import JSON_TEXT, MALFORMED, Record


def record_value(record: Record) -> tuple[Any, str | None]:
    """The value a record holds; or None and the error line of a record that cannot be read."""
    index, line, kind, payload = record
    if kind == MALFORMED:
        return None, error_line(index, "MalformedRecord", f"line {line}: {payload}", "")
    if kind == JSON_TEXT:
        try:
            return json.loads(payload), None
        except ValueError as error:
            message = f"line {line}: not JSON: {error}"
            return None, error_line(index, "MalformedRecord", message, "")
    return payload, None


def run_record(fn: Callable[[Any], Any], record: Record) -> str:
    """A job: the record's output line. The function's own exception propagates."""
    payload, unreadable = record_value(record)
    if unreadable is not None:
        return unreadable
    index = record[0]
    result = fn(payload)
    try:
        return result_line(index, result)
    except (TypeError, ValueError) as error:
        message = (
            f"the result of record {index} (a {type(result).__qualname__}) cannot be written "
            f"as JSON: {error}. Return JSON values: dicts, lists, strings, numbers, booleans."
        )
        return error_line(index, "UnserializableResult", message, "")


def run_record_with_facts(fn: Callable[[Any], Any], record: Record) -> tuple[str, JobFacts]:
    """``run_record``, and the facts of the run for ``--joblog``: with the line, or on the
    exception (a private attribute, which pickles with it)."""
    context = _context.current()
    worker_id, attempt = (-1, 1) if context is None else (context.worker_id, context.attempts + 1)
    start, began = time.time(), time.perf_counter()
    try:
        line = run_record(fn, record)
    except BaseException as error:
        facts = JobFacts(start, time.perf_counter() - began, attempt, worker_id, os.getpid())
        with contextlib.suppress(Exception):  # a frozen exception keeps no facts
            setattr(error, FACTS_ATTRIBUTE, tuple(facts))
        raise
    return line, JobFacts(start, time.perf_counter() - began, attempt, worker_id, os.getpid())
