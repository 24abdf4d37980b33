"""The jobs the benchmarks send to workers.

They live in an importable module, not in ``__main__``, so that every engine
pickles them by reference (``tasks.inc``) under every start method: the
comparison measures the pools, not how each one serialises a function.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import random
import signal
import time
from typing import Any

import minipool


def inc(x: int) -> int:
    """The tiniest useful job: all of its cost is the pool's overhead."""
    return x + 1


def chaos(x: int, kill_rate: float, hang_rate: float) -> int:
    """``x * x``, except that each run may SIGKILL its worker or hang until killed.

    Random per run, so that a retry of a job that failed usually succeeds.
    """
    roll = random.random()
    if roll < kill_rate:
        os.kill(os.getpid(), signal.SIGKILL)
    elif roll < kill_rate + hang_rate:
        time.sleep(3600)  # past any task_timeout: the pool must kill and replace the worker
    return x * x


def die_at(x: int, fatal: int) -> int:
    """``x + 1``, except that job ``fatal`` SIGKILLs its worker."""
    if x == fatal:
        os.kill(os.getpid(), signal.SIGKILL)
    return x + 1


def log_record(x: int) -> int:
    """``x + 1``, logging one stdlib record on the way."""
    logging.getLogger("bench.logs").info("job %d done", x)
    return x + 1


def log_event(x: int) -> int:
    """``x + 1``, logging one structlog event through minipool on the way."""
    minipool.get_logger().info("job done", x=x)
    return x + 1


def install_queue_handler(queue: Any) -> None:
    """The logging cookbook's worker initializer: every record goes to ``queue``."""
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(queue)]
    root.setLevel(logging.INFO)


def scale(record: dict[str, Any]) -> dict[str, Any]:
    """A trivial record function for the runner benchmark."""
    return {"id": record["id"], "value": record["value"] * 2}


def spin(iterations: int) -> int:
    """Pure-Python work that holds the GIL: ``iterations`` steps of a loop, no I/O."""
    total = 0
    for step in range(iterations):
        total += step * step % 7
    return total


def spin_share(iterations: list[int]) -> int:
    """A bare process's share of the jobs, run one after another."""
    return sum(spin(count) for count in iterations)


def payload(size: int) -> bytes:
    """A result of ``size`` bytes: what moving big results costs."""
    return bytes(size)


def fresh_array(seed: int, size: int) -> Any:
    """A new float64 numpy array of ``size`` bytes, all ``seed`` (fresh pages, as a
    job's result has)."""
    import numpy as np

    return np.full(size // 8, float(seed))


def array_sum(array: Any) -> float:
    """What a job does with a large argument: read all of it."""
    return float(array.sum())


# The array bench_shared.py's peers read: set in each worker by their initializer.
INHERITED: Any = None


def set_inherited(array: Any) -> None:
    """A peer's initializer: keep the array its jobs read."""
    global INHERITED
    INHERITED = array


def inc_beside_shared_objects(_array: Any, x: int) -> int:
    """``inc`` as mpire calls it in a pool with ``shared_objects`` (its warm-up)."""
    return x + 1


def slice_sum_of_shared_objects(array: Any, _source: Any, start: int, stop: int) -> float:
    """``slice_sum`` as mpire calls it: its ``shared_objects`` first, the item unpacked."""
    return float(array[start:stop].sum())


def slice_sum(*item: Any) -> float:
    """Sum ``array[start:stop]`` of ``(array, start, stop)``; ``array`` None: the inherited one.

    The tuple as one argument, or as three (mpire unpacks tuples into arguments)."""
    array, start, stop = item[0] if len(item) == 1 else item
    return float((INHERITED if array is None else array)[start:stop].sum())


def set_out_of_band_min_bytes(size: int) -> None:
    """In a worker (an initializer): buffers of this many bytes and up go through shared
    memory (bench_large.py's crossover sets it per pool)."""
    from minipool import _pickling

    _pickling.OUT_OF_BAND_MIN_BYTES = size
