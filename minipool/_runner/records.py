"""The runner's records: inputs read as a stream, a record at a time.

A record travels to a worker as a ``Record`` tuple. JSON lines are decoded in
the worker, and the worker encodes the output line of a record that
succeeded (see ``job.run_record``), so the caller mostly moves text.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
from collections.abc import Iterable, Iterator
from typing import Any, TextIO


class InputError(ValueError):
    """The input cannot be read on from here (the records before it can)."""


# What a record's payload is.
JSON_TEXT = 0  # a line of JSON, decoded in the worker
VALUE = 1  # the value itself: a CSV row's dict, a line's text
MALFORMED = 2  # why the record could not be read

# (index, line number where it starts, kind, payload)
Record = tuple[int, int, int, Any]

FORMATS = ("jsonl", "csv", "lines")
_LONGEST_FIELD = 2**31 - 1  # what csv.field_size_limit takes on every platform (a C long)
_BY_EXTENSION = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}


def input_format(path: str | None, given: str | None) -> str:
    """``--format``, or what the file's extension says; plain lines otherwise."""
    if given is not None:
        return given
    if path is None or path == "-":
        return "lines"
    return _BY_EXTENSION.get(os.path.splitext(path)[1].lower(), "lines")


def read_records(stream: TextIO, fmt: str) -> Iterator[Record]:
    """The records of ``stream``, one at a time: memory does not grow with the input."""
    if fmt == "csv":
        return _csv_records(stream)
    if fmt == "jsonl":
        return _json_records(stream)
    return _line_records(stream)


def _line_records(stream: TextIO) -> Iterator[Record]:
    for index, line in enumerate(stream):
        yield index, index + 1, VALUE, _without_line_end(line)


def _without_line_end(line: str) -> str:
    if line.endswith("\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith("\n") else line


def _json_records(stream: TextIO) -> Iterator[Record]:
    """JSON Lines; or, when the text opens with ``[``, the values of that one array (how
    most .json files are shipped), streamed: memory holds one value at a time."""
    head = _up_to_the_first_character(stream)
    if head.endswith("["):
        return _JsonArray(stream, head).records()
    first_line = io.StringIO(head + stream.readline(), newline="")  # split as the file is
    return _jsonl_records(itertools.chain(first_line, stream))


def _up_to_the_first_character(stream: TextIO) -> str:
    head = ""
    while True:
        char = stream.read(1)
        head += char
        if not char or not char.isspace():
            return head


class _JsonArray:
    """The values of one JSON array, decoded from a stream one at a time."""

    # Read at least this much at once; a value longer than what is held
    # doubles the read, so that a long one is decoded a few times, not once
    # per chunk.
    CHUNK = 1 << 20

    def __init__(self, stream: TextIO, head: str) -> None:
        self._stream = stream
        self._text = head  # what was read and not yet decoded starts at _pos
        self._pos = len(head)  # just past the "["
        self._line = 1 + head.count("\n")  # the line _pos is on
        self._ended = False
        self._decode = json.JSONDecoder().raw_decode

    def records(self) -> Iterator[Record]:
        index = 0
        if self._next_character() == "]":
            self._pos += 1
        else:
            while True:
                yield index, self._line, VALUE, self._value()
                index += 1
                separator = self._next_character()
                self._pos += 1
                if separator == "]":
                    break
                if separator != ",":
                    raise self._error("expected ',' or ']' after a value of the array")
                self._next_character()
        if self._next_character():
            raise self._error("the text goes on after the array ends")

    def _next_character(self) -> str:
        """The next character that is not white space ("" at the end); ``_pos`` is on it."""
        while True:
            text, pos, end = self._text, self._pos, len(self._text)
            while pos < end and text[pos] in " \t\r\n":
                pos += 1
            self._line += text.count("\n", self._pos, pos)
            self._pos = pos
            if pos < end:
                return text[pos]
            if not self._read_more():
                return ""

    def _value(self) -> Any:
        while True:
            try:
                value, end = self._decode(self._text, self._pos)
            except json.JSONDecodeError as error:
                if self._read_more():
                    continue  # cut off at the end of what was read
                raise self._error(error.msg) from None
            if end == len(self._text) and self._read_more():
                continue  # a number cut off at the end of what was read
            self._line += self._text.count("\n", self._pos, end)
            self._pos = end
            return value

    def _read_more(self) -> bool:
        if self._ended:
            return False
        chunk = self._stream.read(max(self.CHUNK, len(self._text) - self._pos))
        if not chunk:
            self._ended = True
            return False
        self._text = self._text[self._pos :] + chunk
        self._pos = 0
        return True

    def _error(self, what: str) -> InputError:
        return InputError(f"not a JSON array: {what} (line {self._line})")


def _jsonl_records(stream: Iterable[str]) -> Iterator[Record]:
    index = 0
    for number, line in enumerate(stream, 1):
        if line.strip():  # a blank line (a trailing one, say) is no record
            yield index, number, JSON_TEXT, line
            index += 1


def _csv_records(stream: TextIO) -> Iterator[Record]:
    # A field may be as long as a JSON line may: csv's default limit (128 KiB)
    # made a long field a malformed record. The limit is the csv module's, for
    # the whole process: the runner's own.
    csv.field_size_limit(_LONGEST_FIELD)
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None:
        return
    index = 0
    while True:
        line = reader.line_num + 1  # a quoted field may span lines: where this row starts
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield index, line, MALFORMED, f"unreadable CSV: {error}"
        else:
            if not row:
                continue  # a blank line, as csv.DictReader skips them
            if len(row) == len(header):
                yield index, line, VALUE, dict(zip(header, row, strict=True))
            else:
                reason = f"expected {len(header)} fields (as in the header), got {len(row)}"
                yield index, line, MALFORMED, reason
        index += 1


def records_in(path: str, fmt: str) -> int | None:
    """About how many records a regular file holds, fast (the progress bar's total): its
    lines, less a CSV header; None for a stream or a JSON array (one line may hold all)."""
    lines = _count_lines(path)
    if lines is None or (fmt == "jsonl" and _opens_an_array(path)):
        return None
    return max(0, lines - 1) if fmt == "csv" else lines


def _opens_an_array(path: str) -> bool:
    with open(path, "rb") as file:
        return file.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")


def _count_lines(path: str) -> int | None:
    """Lines in a regular file, fast; None for a stream."""
    if path == "-" or not os.path.isfile(path):
        return None
    lines = 0
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            lines += block.count(b"\n")
    return lines
