"""Chunk sizing: from the time and the bytes of the chunk that finished last."""

from __future__ import annotations

from concurrent.futures import Future

from minipool._scheduling import TARGET_CHUNK_BYTES, TARGET_CHUNK_SECONDS, ChunkSizer
from minipool._tasks import ChunkResult


def finished(jobs: int, seconds: float, nbytes: int) -> Future[ChunkResult]:
    future: Future[ChunkResult] = Future()
    future.set_result(ChunkResult([None] * jobs, {}, seconds, nbytes))
    return future


def test_chunks_are_sized_by_time() -> None:
    """Jobs of 10 us with small results: a chunk holds TARGET_CHUNK_SECONDS of work."""
    sizer = ChunkSizer(None, workers=2, total=None, cap=1 << 20)
    sizer.observe(10, finished(10, 10 * 10e-6, 10 * 8))
    assert sizer.next_size() == int(TARGET_CHUNK_SECONDS / 10e-6)


def test_big_results_make_small_chunks() -> None:
    """Fast jobs that return megabytes go one per chunk: a chunk's results fit a pipe-full."""
    sizer = ChunkSizer(None, workers=2, total=None, cap=1 << 20)
    sizer.observe(1, finished(1, 1e-5, 4 << 20))
    assert sizer.next_size() == 1
    sizer.observe(4, finished(4, 4e-5, 4 * (64 << 10)))
    assert sizer.next_size() == TARGET_CHUNK_BYTES // (64 << 10)
