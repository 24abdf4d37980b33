"""What ``Pool.map`` does with its input before it is sent: the arguments checked, the
items cut into tasks, each pickled."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ._messages import TRACKED
from ._pickling import dumps_function
from ._segments import SegmentDir
from ._tasks import ChunkReceiver, Task


def tasks_for(
    first: int,
    fn: bytes,
    items: list[Any],
    star: bool,
    receiver: ChunkReceiver,
    tracking: int,
    timeout: float | None,
    segments: SegmentDir | None,
) -> list[Task]:
    """One task for the chunk; if some arguments do not pickle, those jobs fail alone."""
    whole = Task(
        first, fn, items, star, None, receiver, 0, tracking, timeout=timeout, segments=segments
    )
    try:
        whole.frame()
        return [whole]
    except Exception:
        pass
    tasks = []
    for position in range(len(items)):
        task = whole.part(position, position + 1, tracking=TRACKED)
        try:
            task.frame()
            tasks.append(task)
        except Exception as error:
            failure = TypeError(
                f"the arguments of job {first + position} could not be pickled to send them "
                f"to a worker: {error}"
            )
            failure.__cause__ = error
            receiver.deliver(position, [None], {0: failure}, 0.0)
    return tasks


def dumps_fn(fn: Callable[..., Any]) -> bytes:
    try:
        return dumps_function(fn)
    except Exception as error:
        raise TypeError(
            f"cannot send {fn!r} to the workers: it could not be pickled ({error}). "
            "Pass a function (a lambda or closure works too) whose captured values pickle."
        ) from error


def iterate(position: int, iterable: Any) -> Iterator[Any]:
    try:
        return iter(iterable)
    except TypeError:
        raise TypeError(
            f"map() argument {position} must be iterable (a list, a range, a generator...), "
            f"got {type(iterable).__name__} {iterable!r}"
        ) from None


def common_length(iterables: tuple[Iterable[Any], ...]) -> int | None:
    try:
        return min(len(it) for it in iterables)  # type: ignore[arg-type]
    except TypeError:
        return None


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
