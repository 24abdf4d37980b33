"""Job and init functions that tests/test_runner.py points ``python -m minipool run`` at.

The runner imports them as ``runner_jobs:NAME``; the tests put tests/ on
PYTHONPATH and name their scratch directory in ``RUNNER_JOBS_DIR``, where jobs
keep their call log (one ``"index pid"`` line per call, appended with
O_APPEND so that concurrent workers never interleave) and their switches.
Records are their own index (the tests feed 0, 1, 2, ...), so a job knows
which record it is running. Jobs that wait do so on a file, with a deadline.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from helpers import wait_for_path

import minipool

# How long a job blocks on a file that never appears; far above any --timeout
# the tests set, far below the per-test timeout.
BLOCK_TIMEOUT = 10.0

# A target that is not callable.
NOT_CALLABLE = 42


def _directory() -> Path:
    return Path(os.environ["RUNNER_JOBS_DIR"])


def _log_call(x: Any) -> None:
    """Append ``"x pid"`` to the call log in one write."""
    fd = os.open(_directory() / "calls", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{x} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


# ---- plain jobs --------------------------------------------------------------------


def echo(record: Any) -> Any:
    return record


def fail_on_odd(x: int) -> int:
    if x % 2:
        raise ValueError(f"odd: {x}")
    return x * 10


def unserializable_on_1(x: int) -> Any:
    return object() if x == 1 else x


def crash_on_2(x: int) -> int:
    if x == 2:
        os._exit(13)
    return x


def block_on_slow(record: Any) -> Any:
    """Return the record, except ``"slow"``, which waits on a file that never appears."""
    if record == "slow":
        wait_for_path(_directory() / "never", BLOCK_TIMEOUT)
    return record


# ---- jobs that leave a call log ------------------------------------------------------


def logged_slow(x: int) -> int:
    """Log the call, then take 15 ms of (simulated) work."""
    _log_call(x)
    time.sleep(0.015)
    return x


def logged(x: int) -> int:
    _log_call(x)
    return x


def fail_odd_while_switched(x: int) -> int:
    """Log the call; odd records fail while the file ``fail-switch`` exists."""
    _log_call(x)
    if x % 2 and (_directory() / "fail-switch").exists():
        raise ValueError(f"switched: {x}")
    return x


def fail_first_time(x: int) -> int:
    """Log the call; each record's first call fails, later ones succeed."""
    _log_call(x)
    marker = _directory() / f"tried-{x}"
    if not marker.exists():
        marker.touch()
        raise ValueError(f"first try: {x}")
    return x


# ---- init and worker state -----------------------------------------------------------


def init_generator() -> Iterator[dict[str, int]]:
    """Mark init and teardown with this worker's pid; the state is ``{"base": 1000}``."""
    (_directory() / f"init-{os.getpid()}").touch()
    yield {"base": 1000}
    (_directory() / f"teardown-{os.getpid()}").touch()


def init_plain() -> dict[str, int]:
    return {"base": 2000}


def add_base(x: int) -> int:
    return int(minipool.worker_state()["base"]) + x


# ---- logging ---------------------------------------------------------------------------


def log_each(x: int) -> int:
    """Log the call; then one structlog event and one stdlib record."""
    _log_call(x)
    minipool.get_logger(record=x).info("record done")
    logging.getLogger("runner_jobs").info("stdlib record %s", x)
    return x


def first_waits_for_release(x: int) -> int:
    """Log the call; record 0 then waits until the file ``release`` exists."""
    _log_call(x)
    if x == 0:
        wait_for_path(_directory() / "release", BLOCK_TIMEOUT)
    return x


def chatty(x: Any) -> Any:
    """Print to stdout, as jobs do, and return the record."""
    print(f"chatter {x}", flush=True)
    return x


# ---- messages and init ----------------------------------------------------------------


def crash_on_7(x: int) -> int:
    """SIGKILL the worker on record 7."""
    if x == 7:
        os.kill(os.getpid(), signal.SIGKILL)
        wait_for_path(_directory() / "never", BLOCK_TIMEOUT)  # the signal lands a moment later
    return x


def block_on_7(x: int) -> int:
    """Record 7 takes far longer than any --timeout the tests set."""
    if x == 7:
        wait_for_path(_directory() / "never", BLOCK_TIMEOUT)
    return x


def init_with(path: str, count: int) -> dict[str, Any]:
    return {"path": path, "count": count}


def read_init_state(x: int) -> list[Any]:
    state = minipool.worker_state()
    return [state["path"], state["count"], x]


def init_raises() -> None:
    raise RuntimeError("no database at /nowhere")


def init_exits() -> None:
    os._exit(9)


def log_then_fail_on_odd(x: int) -> int:
    """One structlog event per record, as the README's clean.py logs; odd records fail."""
    minipool.get_logger(record=x).info("cleaning")
    if x % 2:
        raise ValueError(f"odd: {x}")
    return x


def slow_fail_odd_while_switched(x: int) -> int:
    """``fail_odd_while_switched`` after 10 ms of (simulated) work: chunks stay small."""
    time.sleep(0.01)
    return fail_odd_while_switched(x)
