"""Jobs that move large buffers, for the tests of shared memory (``test_large_data``).

Apart from ``jobs`` because they need numpy, which only these tests use.
"""

from __future__ import annotations

import os
import pickle
import signal
from pathlib import Path
from typing import Any

import numpy as np
from helpers import in_pool_segment, wait_for_path
from jobs import RELEASE_TIMEOUT

# Large enough to leave the pickle (minipool._segments.OUT_OF_BAND_MIN_BYTES is
# 512 KiB), small enough to be quick.
LARGE = 1 << 17  # float64 items: 1 MiB


def ramp(size: int, start: float = 0.0) -> np.ndarray:
    """``start, start + 1, ...``: ``size`` float64 values (ValueError for a negative size)."""
    if size < 0:
        raise ValueError(f"no ramp of {size} values")
    return np.arange(size, dtype=np.float64) + start


def describe(array: np.ndarray) -> tuple[float, bool, bool]:
    """What a job sees of its argument: its sum, whether it may write to it, whether it
    reads it from a segment of its pool (no copy)."""
    return float(array.sum()), array.flags.writeable, in_pool_segment(array)


def scribble(array: np.ndarray) -> float:
    """Write over the argument (the worker's copy on write): the caller's stays as it was."""
    array[:] = -1.0
    return float(array.sum())


def mixed(size: int) -> dict[str, Any]:
    """A result of several buffers, large and small, with other values around them."""
    return {
        "large": ramp(size),
        "small": ramp(8),
        "read_only": _read_only(ramp(size, 1.0)),
        "bytes": bytearray(b"x" * size),
        "buffer": pickle.PickleBuffer(bytearray(b"y" * size)),
        "name": "mixed",
    }


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def crash_holding(array: np.ndarray) -> None:
    """Die (SIGKILL) with a large argument mapped."""
    assert array.size
    os.kill(os.getpid(), signal.SIGKILL)


def wait_holding(array: np.ndarray, release: str) -> float:
    """Hold a large argument until ``release`` exists."""
    wait_for_path(Path(release), RELEASE_TIMEOUT)
    return float(array.sum())


def announce_then_wait(array: np.ndarray, started: str, release: str) -> float:
    """Say it started (``started`` appears), then hold the argument until ``release``."""
    Path(started).touch()
    return wait_holding(array, release)


def init_small_file_limit() -> None:
    """No file of this worker may pass 4 KiB: its segments cannot be written (as when
    /dev/shm is full), and its results must come through the pipe."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a signal that kills
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def read_shared(table: dict[str, Any], index: int) -> tuple[float, bool, bool, int, int]:
    """What a job sees of a shared dict holding an array: the sum of its row ``index``,
    whether it may write the array, whether it reads it in place, and the ids of the
    dict and of the process (one unpickled dict per worker)."""
    array = table["rows"]
    return (
        float(array[index].sum()),
        array.flags.writeable,
        in_pool_segment(array),
        id(table),
        os.getpid(),
    )


def write_shared(array: np.ndarray) -> None:
    array[0] = 1.0  # a read-only view: ValueError


def describe_first(items: list[Any]) -> str:
    """The type of the first item, as the job gets it."""
    return type(items[0]).__name__


def memoryviews(size: int) -> dict[str, memoryview]:
    """memoryviews (which pickle refuses): of doubles, 2-D, read-only, strided."""
    doubles = memoryview(ramp(size).tobytes()).cast("d")
    return {
        "doubles": doubles,
        "grid": memoryview(bytearray(size * 8)).cast("d", (size // 4, 4)),
        "read_only": memoryview(bytes(range(256)) * (size // 256)),
        "strided": memoryview(bytearray(range(256)) * (size // 256))[::2],
    }


def view_total(view: memoryview) -> tuple[float, str]:
    """A job given a memoryview: the sum of its doubles, and its format."""
    return float(np.frombuffer(view, dtype=np.float64).sum()), view.format


_kept: list[np.ndarray] = []


def keep(array: np.ndarray) -> int:
    """Keep the argument beyond the job (as a cache would); how many are kept."""
    _kept.append(array)
    return len(_kept)


def kept_sums() -> list[float]:
    return [float(array.sum()) for array in _kept]


def fork_keeping(array: np.ndarray, release: str, report: str) -> int:
    """Fork a child that keeps the argument after this job ends: once ``release``
    exists, it writes the argument's sum to ``report`` and exits. The child's pid."""
    pid = os.fork()
    if pid == 0:
        try:
            wait_for_path(Path(release), RELEASE_TIMEOUT)
            Path(report).write_text(repr(float(array.sum())))
        finally:
            os._exit(0)
    return pid


def frame(size: int) -> Any:
    """A pandas DataFrame of ``size`` rows: a float and an int column (numpy-backed)."""
    import pandas as pd

    return pd.DataFrame({"x": ramp(size), "n": np.arange(size)})


def frame_facts(table: Any) -> tuple[float, int, bool]:
    """A job given a DataFrame: the sum of x, of n, whether x is read in place."""
    return float(table["x"].sum()), int(table["n"].sum()), in_pool_segment(table["x"].to_numpy())
