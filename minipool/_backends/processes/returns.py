"""Shared-memory segments the master hands back to the workers once the caller lets go.

- ``RELEASE``: a ``Shared`` was released (``Shared.release()``, or the pool
  shuts down): every worker drops its mapping and its cached object.
- ``RETURN``: the caller dropped its last view of a result that came in a
  segment (see ``_segment_maps.take_unmapped``): the worker that wrote it may
  write it again, which is faster than making a new file. A segment whose
  worker is gone is removed instead.

Both are frames in the workers' outboxes, written with the master's next flush.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

from ..._messages import RELEASE, RETURN, join_paths
from ..._segment_maps import take_unmapped, unlink, writer_pid
from ..._segments import SegmentDir
from .handle import WorkerHandle


class Returns:
    """What goes back to the workers; ``release`` is called from caller threads, ``send``
    from the master thread."""

    def __init__(
        self, lock: threading.Lock, wake: Callable[[], None], segments: SegmentDir | None
    ) -> None:
        self._lock = lock  # the master's: ``wake`` is called with it held
        self._wake = wake
        self._segments = segments
        self._released: list[str] = []  # Shareds' segments the workers must drop

    def release(self, path: str) -> None:
        with self._lock:
            self._released.append(path)
            self._wake()

    def send(self, workers: Sequence[WorkerHandle | None], to_flush: set[WorkerHandle]) -> None:
        """Put the frames in the outboxes of ``workers``; those written to join ``to_flush``."""
        if self._released:
            self._send_releases(workers, to_flush)
        unmapped = take_unmapped(self._segments.path) if self._segments is not None else []
        if unmapped:
            self._return_results(unmapped, workers, to_flush)

    def _send_releases(
        self, workers: Sequence[WorkerHandle | None], to_flush: set[WorkerHandle]
    ) -> None:
        with self._lock:
            released, self._released = self._released, []
        for worker in workers:
            if worker is not None:
                for path in released:
                    worker.outbox.add(RELEASE, os.fsencode(path))
                to_flush.add(worker)

    def _return_results(
        self,
        unmapped: list[str],
        workers: Sequence[WorkerHandle | None],
        to_flush: set[WorkerHandle],
    ) -> None:
        by_pid = {worker.pid: worker for worker in workers if worker is not None}
        back: dict[WorkerHandle, list[str]] = {}
        for path in unmapped:
            worker = by_pid.get(writer_pid(path))
            if worker is None:
                unlink(path)  # its worker is gone
            else:
                back.setdefault(worker, []).append(path)
        for worker, paths in back.items():
            worker.outbox.add(RETURN, join_paths(paths))
            to_flush.add(worker)
