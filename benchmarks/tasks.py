"""The jobs the benchmarks send to workers.

They live in an importable module, not in ``__main__``, so that every engine
pickles them by reference (``tasks.inc``) under every start method: the
comparison measures the pools, not how each one serialises a function.
"""

from __future__ import annotations


def inc(x: int) -> int:
    """The tiniest useful job: all of its cost is the pool's overhead."""
    return x + 1
