"""One ``lazy_memory`` measurement, run by ``bench_engine.py`` in a fresh process.

    python benchmarks/lazy_memory.py ENGINE ITEMS --workers N --start-method M [--chunksize C]

Maps ``tasks.inc`` over a generator of ``ITEMS`` ints with ``ENGINE``'s ordered,
iterator-returning map, consuming results one by one, and prints one JSON
line: the peak growth of this process's resident memory over the run, the
most inputs the engine pulled from the generator ahead of the consumer, and
the wall time. A fresh process per run keeps the memory baseline clean.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
from collections.abc import Iterator
from time import perf_counter
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engines
import tasks

# Fallback only, where /proc/self/clear_refs cannot reset VmHWM: short enough
# to catch a brief peak, long enough that the sampler barely competes for the GIL.
SAMPLE_SECONDS = 0.001


class Progress:
    """Shared by the generator (perhaps pulled from an engine's thread) and the consumer."""

    def __init__(self) -> None:
        self.pulled = 0
        self.consumed = 0
        self.most_ahead = 0


def numbers(count: int, progress: Progress) -> Iterator[int]:
    """``range(count)`` as a generator (no ``len``) that records how far ahead it is read."""
    for x in range(count):
        progress.pulled += 1
        ahead = progress.pulled - progress.consumed
        if ahead > progress.most_ahead:
            progress.most_ahead = ahead
        yield x


class PeakRss:
    """The peak of this process's RSS above its level when the object was made."""

    def __init__(self) -> None:
        self.method = "VmHWM" if _reset_high_water_mark() else "sampled"
        self.baseline_kib = _status_kib("VmRSS")
        self._peak_kib = self.baseline_kib
        self._done = threading.Event()
        self._sampler: threading.Thread | None = None
        if self.method == "sampled":
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()

    def _sample(self) -> None:
        while not self._done.wait(SAMPLE_SECONDS):
            self._peak_kib = max(self._peak_kib, _status_kib("VmRSS"))

    def growth_bytes(self) -> int:
        if self._sampler is not None:
            self._done.set()
            self._sampler.join()
            peak = max(self._peak_kib, _status_kib("VmRSS"))
        else:
            peak = _status_kib("VmHWM")
        return (peak - self.baseline_kib) * 1024


def _reset_high_water_mark() -> bool:
    """Set VmHWM back to the current RSS (Linux 4.0+), if this kernel lets us."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line")


def measure(engine: str, pool: Any, items: int, chunksize: int | None) -> dict[str, Any]:
    progress = Progress()
    gc.collect()
    peak = PeakRss()
    start = perf_counter()
    results = engines.lazy_map(engine, pool, tasks.inc, numbers(items, progress), chunksize)
    for value in results:
        progress.consumed += 1
        if value != progress.consumed:
            raise AssertionError(f"result {progress.consumed} is {value!r}: out of order")
    seconds = perf_counter() - start
    growth = peak.growth_bytes()
    if progress.consumed != items:
        raise AssertionError(f"{progress.consumed} results for {items} inputs")
    return {
        "engine": engine,
        "items": items,
        "chunksize": chunksize,
        "rss_growth_mb": growth / 1e6,
        "max_ahead": progress.most_ahead,
        "seconds": seconds,
        "peak_method": peak.method,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine", choices=engines.everyone())
    parser.add_argument("items", type=int)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--start-method", default="fork")
    parser.add_argument("--chunksize", type=int, default=None)
    args = parser.parse_args(argv)
    with engines.open_pool(args.engine, args.workers, args.start_method) as pool:
        engines.warm_up(args.engine, pool, args.workers)
        result = measure(args.engine, pool, args.items, args.chunksize)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
