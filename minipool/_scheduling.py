"""How much work goes where: the two sizing policies, with their tuning constants.

``JobTimer`` (master side) decides how many jobs each worker may hold;
``ChunkSizer`` (one per ``map`` call) decides how many jobs go in each chunk.
Both work from the run times the workers measure and report with each
``Outcome``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._tasks import ChunkResult

# How much work, in seconds of the jobs' own run time, to keep queued at each
# worker so that it never waits on the master. More gives throughput on tiny
# jobs (and absorbs the master's waits for the GIL); less balances long jobs
# better across workers and makes stop() quicker.
PREFETCH_SECONDS = 0.02
# Tasks a worker may hold however long they run: the one it runs and the next,
# so that it starts the next without a round trip to the master.
MIN_TASKS_IN_FLIGHT = 2
# Cap on queued jobs per worker when jobs take almost no time.
MAX_JOBS_IN_FLIGHT = 1 << 16


class JobTimer:
    """A running estimate of how long one job runs, from the workers' own timings."""

    # Weight of the newest sample: high enough to follow a change of workload
    # within a few chunks, low enough to ride out one slow job.
    SMOOTHING = 0.3

    def __init__(self) -> None:
        self.seconds_per_job: float | None = None

    def observe(self, jobs: int, seconds: float) -> None:
        sample = seconds / jobs
        estimate = self.seconds_per_job
        self.seconds_per_job = (
            sample if estimate is None else estimate + self.SMOOTHING * (sample - estimate)
        )

    def jobs_in_flight_cap(self) -> int:
        if self.seconds_per_job is None:
            return 1
        return int(min(MAX_JOBS_IN_FLIGHT, max(1.0, PREFETCH_SECONDS / self.seconds_per_job)))


# Expected worker deaths per chunk that chunk sizes aim for once workers have
# died. A death costs the results its chunk had not sent yet, so a chunk that
# likely holds one crash is mostly thrown away, and so, when re-run, again.
CRASHES_PER_CHUNK = 0.1


def crash_safe_jobs(crashes: int, jobs_done: int) -> int | None:
    """The most jobs a chunk should hold at the observed crash rate; None before any crash."""
    if crashes == 0:
        return None
    rate = crashes / max(1, jobs_done)
    return max(1, int(CRASHES_PER_CHUNK / rate))


# Jobs measured faster than this run untracked (see _messages.Chunk). Tracking
# costs 1 to 1.5 us a job (its id published, its result pickled alone in the
# worker and unpickled alone in the caller): 10% or more of a job this short.
# At 5 us, the runner's records over a trivial function (about 5 us each)
# ran tracked, at 0.82x the throughput they have untracked.
UNTRACKED_BELOW_SECONDS = 10e-6
# Long enough that the fixed cost of a chunk on the process pool (a few hundred
# microseconds of pickling and pipe traffic) is noise; short enough to balance
# work across workers and to keep stop() and the progress bar prompt. Each
# backend says what suits it (Backend.chunk_seconds); this is the processes'.
TARGET_CHUNK_SECONDS = 0.01
# A chunk's pickled results should fit in one pipe-full: bigger ones wait,
# whole, in the worker and then in the master before any of them is delivered,
# and keep the other workers from sharing the work. Jobs that return megabytes
# go one per chunk.
TARGET_CHUNK_BYTES = 1 << 20
# A sized input is cut as guided self-scheduling cuts a loop: each chunk takes
# a share of what remains, 1 / (CHUNK_SHARE_DIVISOR * workers), so chunks
# start long and shrink as the input runs out, and workers finish together.
# Far fewer chunks than at a fixed length (400 jobs of 5 ms on 2 workers: 55
# chunks, not 200), and each costs the caller hundreds of microseconds.
CHUNK_SHARE_DIVISOR = 4
# The longest chunk a sized input gets, in seconds of work, on the process
# pool: its worker sends the results done so far every HOLD_SECONDS (20 ms,
# see sender.py) while a chunk runs, so results do not wait for a long chunk
# to end; but a chunk cannot move to an idle worker once it started, and a
# worker that dies costs the jobs of its chunk a re-run. At 0.2 s, the
# skewed benchmark (20 jobs of 40 ms, then 380 of 1 ms) took 1.01x its ideal
# time against 0.97x before: chunks of five long jobs balance worse.
LONGEST_CHUNK_SECONDS = 0.05
# Near the end of a sized input chunks shrink so that workers finish together,
# but never below this share of a chunk's target: shorter chunks cost more in
# round trips than they can save in balance.
TAIL_CHUNK_SHARE = 0.2


class ChunkSizer:
    """Sizes each chunk of one ``map`` from the last chunk that finished."""

    def __init__(
        self,
        chunksize: int | None,
        workers: int,
        total: int | None,
        cap: int,
        seconds: float = TARGET_CHUNK_SECONDS,
        longest_seconds: float = LONGEST_CHUNK_SECONDS,
    ) -> None:
        self._fixed = chunksize
        self._seconds = seconds  # of work per chunk
        self._longest_seconds = max(seconds, longest_seconds)  # for a share of a sized input
        self._workers = workers
        self._remaining = total
        self._cap = cap
        # (jobs, seconds) of the chunk that finished last. The latest sample,
        # not an average: a first one-job chunk overstates the time per job
        # many times over (fixed costs), and an average would remember that.
        self._latest: tuple[int, float] | None = None
        self._bytes_per_job = 0.0  # of pickled results, in that chunk

    def observe(self, jobs: int, result: ChunkResult) -> None:
        """A chunk of ``jobs`` jobs is complete (in the master thread). Not
        ``len(result.values)``: the consumer may be taking the values out already."""
        self._latest = (jobs, result.seconds)
        self._bytes_per_job = result.nbytes / max(1, jobs)

    @property
    def measured(self) -> bool:
        return self._fixed is not None or self._latest is not None

    @property
    def jobs_are_tiny(self) -> bool:
        if self._latest is None:
            return False
        jobs, seconds = self._latest
        return seconds / jobs < UNTRACKED_BELOW_SECONDS

    def next_size(self, crash_safe: int | None = None) -> int:
        """The next chunk's size; ``crash_safe`` caps it when workers have been dying."""
        if self._fixed is not None:
            size = self._fixed
        elif self._latest is None:
            size = 1
        else:
            size = self._measured_size()
        size = max(1, min(size, self._cap, crash_safe or size))
        if self._remaining is not None:
            self._remaining = max(0, self._remaining - size)
        return size

    def _measured_size(self) -> int:
        """A chunk's size from the time per job measured: the target's worth of jobs, or, for
        a sized input, its share of the jobs left (see ``CHUNK_SHARE_DIVISOR``)."""
        assert self._latest is not None
        jobs, seconds = self._latest
        per_job = max(seconds / jobs, 1e-9)
        size = int(self._seconds / per_job)
        if self._remaining is not None:
            share = math.ceil(self._remaining / (CHUNK_SHARE_DIVISOR * self._workers))
            longest = int(self._longest_seconds / per_job)
            tail = int(self._seconds * TAIL_CHUNK_SHARE / per_job)
            size = min(max(size, min(share, longest)), max(share, tail))
        if self._bytes_per_job:
            size = min(size, int(TARGET_CHUNK_BYTES / self._bytes_per_job))
        return size
