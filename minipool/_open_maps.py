"""A pool's maps with input left at shutdown, or dropped unread: no work is silently lost.

``with Pool() as pool: pool.map(touch, paths)`` never reads its results. The
stdlib's ``map`` submits every item at once, so they all run anyway; a lazy
map pulls its input only as its results are read, and unread it ran its first
chunks and dropped the rest without a word (version 1 ran 2 of 1,000). So a
map whose iterator is dropped before its first result was asked for runs on,
in a thread of its own that reads its results, logging each job's error
(nobody else will see it) as a warning on logger ``"minipool"``:

- over an input of known length (a list, a range), to its end:
  ``shutdown(wait=True)``, and so a ``with`` block, waits for it;
- over an iterator, which may never end, until its input ends or the pool
  shuts down; shutdown stops it and warns that the rest of its input was
  dropped, saying how many items ran.

A map still held at ``shutdown(wait=True)`` (``results = pool.map(...)`` in
the ``with`` block, read after it, as the stdlib allows) has the rest of a
list or range submitted then, so that its reader gets every result; over an
iterator, its reader gets the results of what it had read, then an error
that says why the rest did not run.

A map whose results were read and which is then dropped (a ``break``) stops
at once, as before: its reader chose to.

Rejected: submitting a map's whole input at once, as the stdlib does. An
endless generator would never return, and a long input would sit in memory,
pickled, all of it.
"""

from __future__ import annotations

import logging
import threading
import weakref
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._map import MapRun

_log = logging.getLogger("minipool")


class OpenMaps:
    """One pool's maps, those held by their readers and those that run on unread (see
    the module's docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: weakref.WeakSet[MapRun] = weakref.WeakSet()
        self._running: dict[MapRun, threading.Event] = {}
        self._closed = False

    def track(self, run: MapRun) -> None:
        """``run`` is held by its reader until its iterator is dropped."""
        with self._lock:  # finish() iterates over them from another thread
            self._held.add(run)

    def adopt(self, run: MapRun) -> None:
        """``run``'s iterator was dropped unread: run it to the end in a thread of its own."""
        with self._lock:
            if self._closed:  # dropped after shutdown began: what it did not pull is lost
                run.stop_pulling()
            done = self._running[run] = threading.Event()
        thread = threading.Thread(target=self._drain, args=(run, done), daemon=True)
        thread.name = "minipool-unread-map"
        thread.start()

    def finish(self, wait: bool) -> None:
        """At shutdown: with ``wait``, submit the rest of the held maps over inputs of known
        length, let the unread ones end and wait for all of them; stop the others (and
        without ``wait``, all) from pulling more."""
        with self._lock:
            self._closed = True
            running = list(self._running.items())
            held = [run for run in self._held if run not in self._running]
        if wait:
            for run in held:
                if run.total is not None:
                    run.pull_all()
        for run, _ in running:
            if not (wait and run.total is not None):
                run.stop_pulling()
        if wait:
            for _, done in running:
                done.wait()

    def _drain(self, run: MapRun, done: threading.Event) -> None:
        try:
            for position, _values, errors in run.takes():
                for offset, error in errors.items():
                    if not isinstance(error, CancelledError):
                        _log.warning(
                            "item %d of an unread map of %s failed: %s: %s",
                            position + offset,
                            run.fn_name,
                            type(error).__name__,
                            error,
                        )
        except CancelledError:
            pass  # the pool was stopped: stop() cancels what has not run, by design
        except Exception as error:  # the input raised, or the pool refused its next chunk
            _log.warning("an unread map of %s ended early: %s", run.fn_name, error)
        finally:
            if run.dropped_input:
                _log.warning(
                    "a map of %s was never read, over an iterator (which may never end): "
                    "it ran on until the pool shut down, which dropped the rest of its "
                    "input after %d items. Read a map's results (for result in "
                    "pool.map(...)), or pass a list, for every item to run.",
                    run.fn_name,
                    run.pulled,
                )
            with self._lock:
                del self._running[run]
            done.set()
