"""The jobs the benchmarks send to workers.

They live in an importable module, not in ``__main__``, so that every engine
pickles them by reference (``tasks.inc``) under every start method: the
comparison measures the pools, not how each one serialises a function.
"""

from __future__ import annotations

import os
import random
import signal
import time


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
