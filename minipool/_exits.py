"""How the caller's process ends with pools still running: interpreter exit, SIGTERM, Ctrl-C.

- At interpreter exit, a pool shut down without waiting (``shutdown(wait=False)``,
  or dropped) still runs the jobs it accepted, as ``Executor`` promises; a
  pool never shut down is stopped (jobs in hand finish, teardown runs). A
  stopped pool's workers are killed if they take more than a few seconds, and
  so is a pool's that is still waited for when Ctrl-C or SIGTERM comes. This
  handler is registered after multiprocessing's own, so it runs first (atexit
  is last-in, first-out), before that one joins every child.
- SIGTERM would kill the caller on the spot and leave workers to notice on
  their own. While a pool runs, and only if the program has no SIGTERM
  handler of its own, minipool turns it into ``SystemExit(143)`` in the main
  thread: ``with`` blocks and ``finally`` clauses run, the pools stop cleanly,
  no traceback is printed, and the exit status says SIGTERM as before.
- Ctrl-C needs nothing here: workers ignore SIGINT, the caller gets the one
  ``KeyboardInterrupt``, and ``Pool.__exit__`` stops the pool (see ``leave``).
  So does a Ctrl-C or SIGTERM that interrupts ``shutdown()`` while it waits.

Every wait here is on the backend's own event, never ``Thread.join()``,
which a signal can break for good (CPython gh-90882: the interrupted join
marks the thread as stopped, and the handler would think the pool gone).
"""

from __future__ import annotations

import atexit
import multiprocessing.util  # noqa: F401 -- registers its exit handler, which must come before ours
import os
import signal
import sys
import threading
import weakref
from types import FrameType
from typing import Protocol

# How long a stopping pool may take before its workers are killed: at
# interpreter exit, and after a second Ctrl-C.
STOP_GRACE_SECONDS = 5.0
SIGTERM_EXIT_STATUS = 128 + signal.SIGTERM
# A stop that takes longer than this says what it waits for.
HINT_AFTER_SECONDS = 1.0


class Stoppable(Protocol):
    def stop(self) -> None: ...
    def join(self, timeout: float | None) -> bool: ...
    def kill_workers(self) -> None: ...
    @property
    def running(self) -> bool: ...
    @property
    def closing(self) -> bool: ...
    @property
    def stop_requested(self) -> bool: ...
    def disown(self) -> None: ...


_live: weakref.WeakSet[Stoppable] = weakref.WeakSet()


def register(master: Stoppable) -> None:
    _live.add(master)
    _take_over_sigterm()


def unregister(master: Stoppable) -> None:
    _live.discard(master)


def _disown_live_pools() -> None:
    """In a child forked from this process: none of the pools here is the child's.

    Without this, the child's exit would stop its parent's pools (the stop
    flag is shared memory), and a job it submitted would wait forever.
    """
    for master in list(_live):
        master.disown()
    _live.clear()


os.register_at_fork(after_in_child=_disown_live_pools)


def leave(master: Stoppable) -> None:
    """Ctrl-C or SystemExit in a ``with`` block or during ``shutdown()``: stop, and wait
    only for the jobs in hand.

    A second Ctrl-C (or SIGTERM) while they finish kills the workers, instead
    of printing a second traceback.
    """
    master.stop()
    try:
        if master.join(HINT_AFTER_SECONDS):
            return
        print(
            "minipool: stopping; waiting for the jobs in hand to finish "
            "(Ctrl-C again to kill the workers)",
            file=sys.stderr,
            flush=True,
        )
        master.join(None)
    except (KeyboardInterrupt, SystemExit):
        _kill([master])


# Registered at import, after multiprocessing.util registered its own (imported
# above for that reason), so that this one runs first.
@atexit.register
def _end_live_pools() -> None:
    masters = list(_live)
    for master in masters:
        if not master.closing:
            master.stop()  # never shut down: stop it
    try:
        for master in masters:
            if not master.stop_requested:
                master.join(None)  # shut down without waiting: it runs what it accepted
    except (KeyboardInterrupt, SystemExit):
        pass  # Ctrl-C or SIGTERM meanwhile: those are stopped too, below
    stop_live_pools()


def stop_live_pools() -> None:
    """Stop every pool of this process; kill the workers of those that take longer than
    ``STOP_GRACE_SECONDS`` (a worker's end, for pools its jobs left open)."""
    masters = list(_live)
    for master in masters:
        master.stop()
    for master in masters:
        if not master.join(STOP_GRACE_SECONDS):
            _kill([master])


def _kill(masters: list[Stoppable]) -> None:
    for master in masters:
        master.kill_workers()
    for master in masters:
        master.join(STOP_GRACE_SECONDS)


def _take_over_sigterm() -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers; leave SIGTERM as it is
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if any(master.running for master in list(_live)):
        raise SystemExit(SIGTERM_EXIT_STATUS)
    # No pool runs any more: behave as if minipool had never been here.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
