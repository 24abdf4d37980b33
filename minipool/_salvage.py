"""The values of a batch pickle that does not load as a whole: each one that loads.

An untracked run of jobs sends its results as one pickled list (see
``_execute``): the fast path for tiny jobs. If one value cannot be rebuilt in
the caller (its class is missing there, its ``__reduce__`` or ``__setstate__``
raises, an exception of CPython's gh-79492 kind), the list does not load, and
without this module every job of the run would fail with it.

``load_each`` cuts the list's pickle into one piece per value, by following
the pickle's opcodes and their stack effects (``pickletools``), and loads the
pieces in order with one shared memo, so that values shared between jobs stay
shared and a value that refers to an earlier one finds it. A piece that fails
is that job's error; a later piece that refers to what a failed one would have
built fails too, never loading with something else in its place.

Only the failure path comes here, at the pure-Python unpickler's speed; the
cost of a batch that loads stays one ``pickle.loads``. Rejected: pickling the
values of every run one by one (a tiny job returning a ``datetime`` ran three
times slower), and checking in the worker that a batch loads (it runs the
user's reconstructors in the worker, and a class missing only in the caller
still fails there).
"""

from __future__ import annotations

import io
import pickle
import pickletools
from collections.abc import Sequence
from typing import Any

_MARK = pickletools.markobject
# Opcodes that store the top of the stack in the memo, and those that read it.
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"})
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})


class _Piece:
    """The opcodes that build one value of the list, and the memo entries they touch."""

    __slots__ = ("buffers", "code", "gets", "memoized", "puts")

    def __init__(self) -> None:
        self.code = bytearray()
        self.buffers = 0  # out-of-band buffers it takes (NEXT_BUFFER), in order
        self.gets: list[int] = []  # memo indices read
        self.puts: list[int] = []  # memo indices written by PUT opcodes
        self.memoized = 0  # memo entries written by MEMOIZE (at the memo's length)


class _Unbuilt:
    """What the memo holds where a failed piece would have stored a value."""


_UNBUILT = _Unbuilt()


def load_each(
    blob: bytes | memoryview, count: int, buffers: Sequence[memoryview] = ()
) -> tuple[list[Any], dict[int, BaseException]]:
    """The ``count`` values of the pickled list ``blob``, and the error of each that fails.

    ``buffers``: the out-of-band buffers the list was pickled with; each piece
    takes its own, so that a failed piece cannot hand its buffers to the next.
    Raises ``ValueError`` if ``blob`` is not a list pickle of that many values.
    """
    pieces, header_puts = _pieces(bytes(blob))
    if len(pieces) != count:
        raise ValueError(f"a pickled list of {count} values has {len(pieces)}")
    memo: dict[int, Any] = dict.fromkeys(range(header_puts))  # the list itself
    values: list[Any] = [None] * count
    errors: dict[int, BaseException] = {}
    taken = 0
    for position, piece in enumerate(pieces):
        memo_size = len(memo)
        own, taken = buffers[taken : taken + piece.buffers], taken + piece.buffers
        try:
            values[position] = _load(piece, memo, own)
        except BaseException as error:  # the user's reconstructor raised: that job's error
            errors[position] = error
            _mark_unbuilt(piece, memo, memo_size)
    return values, errors


def _load(piece: _Piece, memo: dict[int, Any], buffers: Sequence[memoryview]) -> Any:
    if any(memo.get(index) is _UNBUILT for index in piece.gets):
        raise pickle.UnpicklingError("it refers to a value of another job that did not unpickle")
    # The pure-Python unpickler: its memo is a plain dict, which the pieces share.
    code = io.BytesIO(bytes(piece.code) + pickle.STOP)
    unpickler = pickle._Unpickler(code, buffers=buffers)
    unpickler.memo = memo  # type: ignore[attr-defined]  # set in __init__, missing in typeshed
    return unpickler.load()


def _mark_unbuilt(piece: _Piece, memo: dict[int, Any], memo_size: int) -> None:
    """Fill in the memo entries the failed ``piece`` did not write (it found ``memo_size``
    of them), so that the memo indices of the pieces after it stay right."""
    for index in [*piece.puts, *range(memo_size, memo_size + piece.memoized)]:
        memo.setdefault(index, _UNBUILT)


def _pieces(blob: bytes) -> tuple[list[_Piece], int]:
    """Cut a pickled list of two or more values (``MARK`` values ``APPENDS``, in batches)
    into one piece per value; also how many memo entries come before the first value."""
    # Positions are None only for a stream without tell(); bytes have them.
    ops = [(op, arg, position or 0) for op, arg, position in pickletools.genops(blob)]
    ends = [position for _, _, position in ops[1:]] + [len(blob)]
    ranges = _value_ranges(ops)
    pieces = []
    for start, stop in ranges:
        piece = _Piece()
        for index in range(start, stop):
            op, arg, position = ops[index]
            if op.name != "FRAME":  # framing only: the pieces are loaded unframed
                piece.code += blob[position : ends[index]]
                piece.buffers += op.name == "NEXT_BUFFER"
                _note_memo(piece, op.name, arg)
        pieces.append(piece)
    first = ranges[0][0] if ranges else len(ops)
    header_puts = sum(op.name in _PUTS for op, _, _ in ops[:first])
    return pieces, header_puts


def _value_ranges(ops: list[tuple[pickletools.OpcodeInfo, Any, int]]) -> list[tuple[int, int]]:
    """For each value of the top-level list, the opcodes that build it: ``(first, stop)``.

    Each object on the unpickler's stack is tracked by the first opcode that
    went into building it, so a value's opcodes run from its own first one to
    the next value's (its trailing ``MEMOIZE`` included).
    """
    levels: list[list[int]] = [[]]  # per open mark, the first opcode of each object
    marks: list[int] = []  # the opcode of each open mark
    ranges: list[tuple[int, int]] = []
    for index, (op, _, _) in enumerate(ops):
        before, after = op.stack_before, op.stack_after
        if _MARK in after:
            marks.append(index)
            levels.append([])
            continue
        if _MARK in before:  # pops down to the mark, and what lies below it in ``before``
            inner = levels.pop()
            taken = [*_pop(levels[-1], before.index(_MARK)), marks.pop()]
            if op.name == "APPENDS" and len(levels) == 1:  # a batch of the list's values
                ranges += zip(inner, [*inner[1:], index], strict=True)
        else:
            taken = [*_pop(levels[-1], len(before)), index]
        levels[-1] += [min(taken)] * len(after)
    return ranges


def _pop(level: list[int], count: int) -> list[int]:
    taken = level[len(level) - count :] if count else []
    del level[len(level) - len(taken) :]
    return taken


def _note_memo(piece: _Piece, name: str, arg: Any) -> None:
    if name == "MEMOIZE":
        piece.memoized += 1
    elif name in _PUTS:
        piece.puts.append(int(arg))
    elif name in _GETS:
        piece.gets.append(int(arg))
