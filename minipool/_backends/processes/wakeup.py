"""How caller threads wake the master thread: one byte down a pipe its ``select`` watches.

Never through a worker's pipe: those have one writer each (the master), and a
caller writing there could interleave with it mid-frame.
"""

from __future__ import annotations

import contextlib
import os
import threading


class Wakeup:
    """A self-pipe shared by the caller threads (writers) and the master thread (reader).

    Every call happens with ``lock`` held (the master's caller-facing lock),
    which keeps the pipe open while a caller writes and orders a wake against
    the master's drain.
    """

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self.reader, self._writer = os.pipe()
        os.set_blocking(self.reader, False)
        os.set_blocking(self._writer, False)
        self._sent = False

    def fds(self) -> tuple[int, ...]:
        return (self.reader, self._writer)

    def wake(self) -> None:
        """Call with the lock held. The byte goes first: a Ctrl-C between the two lines
        then costs a spare wakeup, not every later one."""
        if self._sent or self._writer < 0:
            return
        with contextlib.suppress(BlockingIOError):  # full of wakeups already
            os.write(self._writer, b"\0")
        self._sent = True

    def drain(self) -> None:
        """The master thread was woken. Under the lock, so no caller sets the flag between
        the drain and the clear; whatever callers queued before, the master picks up next."""
        with self._lock:
            with contextlib.suppress(BlockingIOError):
                os.read(self.reader, 4096)  # one byte per wake at most: the flag
            self._sent = False

    def close(self) -> None:
        with self._lock:
            os.close(self._writer)
            self._writer = -1
        os.close(self.reader)
