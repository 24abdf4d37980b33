"""Chunk sizing: from the time and the bytes of the chunk that finished last."""

from __future__ import annotations

from minipool._scheduling import (
    LONGEST_CHUNK_SECONDS,
    TARGET_CHUNK_BYTES,
    TARGET_CHUNK_SECONDS,
    ChunkSizer,
)
from minipool._tasks import ChunkResult


def finished(jobs: int, seconds: float, nbytes: int) -> ChunkResult:
    return ChunkResult([None] * jobs, {}, seconds, nbytes)


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


def _sizes(sizer: ChunkSizer, total: int, seconds_per_job: float) -> list[int]:
    """The chunk sizes ``sizer`` gives an input of ``total`` jobs that each take
    ``seconds_per_job``, every chunk observed as it is cut."""
    sizes: list[int] = []
    while sum(sizes) < total:
        size = min(sizer.next_size(), total - sum(sizes))
        sizes.append(size)
        sizer.observe(size, finished(size, size * seconds_per_job, 0))
    return sizes


def test_a_sized_input_is_cut_into_shrinking_shares_of_what_remains() -> None:
    """400 jobs of 5 ms on 2 workers: chunks take a share of the jobs left, up to
    LONGEST_CHUNK_SECONDS of work, and shrink to single jobs at the end, so that the
    workers finish together; far fewer chunks than the 200 of TARGET_CHUNK_SECONDS each."""
    sizes = _sizes(ChunkSizer(None, workers=2, total=400, cap=1 << 20), 400, 0.005)
    assert sizes[0] == 1  # nothing measured yet
    assert max(sizes) == int(LONGEST_CHUNK_SECONDS / 0.005)
    assert sizes[1:] == sorted(sizes[1:], reverse=True)
    assert sizes[-1] == 1
    assert len(sizes) < 400 * 0.005 / TARGET_CHUNK_SECONDS / 3


def test_chunks_grow_no_longer_than_the_backend_allows() -> None:
    """A backend whose results wait for the end of their chunk (Dask) sets the longest
    chunk to its target: a sized input's chunks are never longer than that."""
    sizer = ChunkSizer(None, workers=2, total=400, cap=1 << 20, seconds=0.1, longest_seconds=0.1)
    sizes = _sizes(sizer, 400, 0.005)
    assert max(sizes) == int(0.1 / 0.005)
