"""In the worker: one record in, its output line out (or the function's own exception)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .output import error_line, result_line
from .records import JSON_TEXT, MALFORMED, Record


def run_record(fn: Callable[[Any], Any], record: Record) -> str:
    """A job: the record's output line. The function's own exception propagates."""
    index, line, kind, payload = record
    if kind == MALFORMED:
        return error_line(index, "MalformedRecord", f"line {line}: {payload}", "")
    if kind == JSON_TEXT:
        try:
            payload = json.loads(payload)
        except ValueError as error:
            return error_line(index, "MalformedRecord", f"line {line}: not JSON: {error}", "")
    result = fn(payload)
    try:
        return result_line(index, result)
    except (TypeError, ValueError) as error:
        message = (
            f"the result of record {index} (a {type(result).__qualname__}) cannot be written "
            f"as JSON: {error}. Return JSON values: dicts, lists, strings, numbers, booleans."
        )
        return error_line(index, "UnserializableResult", message, "")
