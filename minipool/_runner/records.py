"""The runner's records: inputs read as a stream, whole JSON lines out, and resuming.

A record travels to a worker as a ``Record`` tuple. JSON lines are decoded in
the worker, and the worker encodes the output line of a record that
succeeded (see ``run.run_record``), so the caller mostly moves text.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
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


# ---- output -----------------------------------------------------------------------


def result_line(index: int, result: Any) -> str:
    """A success line; raises TypeError or ValueError for a result JSON cannot carry."""
    return f'{{"index": {index}, "result": {json.dumps(result, allow_nan=False)}}}'


def error_line(index: int, type_name: str, message: str, traceback: str) -> str:
    error = {"type": type_name, "message": message, "traceback": traceback}
    return f'{{"index": {index}, "error": {json.dumps(error)}}}'


def is_error_line(line: str) -> bool:
    """Whether a line made by ``result_line`` or ``error_line`` is an error."""
    return line.startswith('"error"', line.index(",") + 2)


class LineWriter:
    """Writes whole lines to a file descriptor, a batch per system call.

    A batch is written with ``os.write`` until all of it is out, so a run that
    is interrupted leaves whole lines; only a kill in the middle of a write can
    leave a last line without its newline, which ``--resume`` cuts off.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, lines: Iterable[str]) -> None:
        data = memoryview("".join(line + "\n" for line in lines).encode())
        while data:
            data = data[os.write(self._fd, data) :]


# ---- resuming -----------------------------------------------------------------------


class IndexSet:
    """A set of record indices as a bitmap: 10 million records take 1.25 MB."""

    def __init__(self) -> None:
        self._bits = bytearray()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, index: int) -> bool:
        byte = index >> 3
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << (index & 7)))

    def set(self, index: int, present: bool) -> None:
        byte, bit = index >> 3, 1 << (index & 7)
        if byte >= len(self._bits):
            if not present:
                return
            self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits))))
        if bool(self._bits[byte] & bit) != present:
            self._bits[byte] ^= bit
            self._count += 1 if present else -1


# The start of every line the runner writes; anything else is parsed as JSON.
_LINE_START = re.compile(rb'\{"index": (\d+), "(result|error)"')


def finished_records(path: str, rerun_failed: bool) -> IndexSet:
    """The indices an earlier run finished: every one with a line, or with
    ``rerun_failed`` those whose newest line is a result. A last line without
    its newline (a run killed mid-write) is cut off the file."""
    done = IndexSet()
    complete = 0  # bytes up to the end of the last whole line
    with open(path, "rb") as file:
        for line in file:
            if not line.endswith(b"\n"):
                break
            complete += len(line)
            parsed = _parse_line(line)
            if parsed is not None:
                index, ok = parsed
                done.set(index, ok or not rerun_failed)
    if complete < os.path.getsize(path):
        os.truncate(path, complete)
    return done


def _parse_line(line: bytes) -> tuple[int, bool] | None:
    """A line's index and whether it is a result; None for a line that is not the runner's."""
    match = _LINE_START.match(line)
    if match is not None:
        return int(match[1]), match[2] == b"result"
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("index"), int):
        return None
    return data["index"], "result" in data
