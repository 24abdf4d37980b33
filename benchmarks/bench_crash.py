"""Job #50 of 200 SIGKILLs its worker: who delivers the other 199, and who survives?

    python benchmarks/bench_crash.py [--start-method fork] [--workers 2]

Each engine runs in a fresh child process with a deadline, because some of
them never return: ``multiprocessing.Pool`` leaves the killed job pending
forever. For each engine the table gives the correct results delivered (of
199), what job #50 got and how long after its worker died, whether the pool
then runs a new job, and whether it shuts down. loky and pebble are measured
when installed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import tasks  # noqa: E402 -- importable once this file's directory is on sys.path

JOBS = 200
FATAL = 50
WAIT_SECONDS = 10.0  # per engine, for all 200 outcomes
SHUTDOWN_SECONDS = 10.0
CHILD_DEADLINE_SECONDS = 60


def _open(engine: str, workers: int, method: str) -> tuple[Any, Any]:
    """The pool, and a submit(fn, *args) -> object with .result(timeout)."""
    import multiprocessing

    ctx = multiprocessing.get_context(method)
    if engine == "minipool":
        import minipool

        pool = minipool.Pool(workers, start_method=method)
        return pool, pool.submit
    if engine == "multiprocessing.Pool":
        pool = ctx.Pool(workers)
        return pool, lambda fn, *args: _AsyncResult(pool.apply_async(fn, args))
    if engine == "ProcessPoolExecutor":
        pool = ProcessPoolExecutor(workers, mp_context=ctx)
        return pool, pool.submit
    if engine == "loky":
        import loky

        # loky refuses fork; its own "loky" method (spawn-like) stands in for it.
        pool = loky.get_reusable_executor(workers, context="loky" if method == "fork" else method)
        return pool, pool.submit
    if engine == "pebble":
        import pebble

        pool = pebble.ProcessPool(workers, context=ctx)
        return pool, lambda fn, *args: pool.schedule(fn, args=args)
    raise ValueError(engine)


class _AsyncResult:
    def __init__(self, result: Any) -> None:
        self._result = result

    def result(self, timeout: float) -> Any:
        return self._result.get(timeout)


def run_engine(engine: str, workers: int, method: str) -> dict[str, Any]:
    """Runs in the child: submit 200 jobs, gather every outcome before a deadline."""
    pool, submit = _open(engine, workers, method)
    submitted = time.monotonic()
    futures = [submit(tasks.die_at, x, FATAL) for x in range(JOBS)]
    deadline = submitted + WAIT_SECONDS
    delivered = 0
    fatal_outcome = "no outcome (pending)"
    fatal_seconds = None
    for x, future in enumerate(futures):
        try:
            value = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except Exception as error:  # one per engine: each reports its own way
            if x == FATAL and "Timeout" not in type(error).__name__:
                fatal_outcome = type(error).__name__
                fatal_seconds = time.monotonic() - submitted
            continue
        delivered += value == x + 1
    try:
        usable = submit(tasks.inc, 1).result(timeout=5.0) == 2
    except Exception:
        usable = False
    return {
        "engine": engine,
        "delivered": delivered,
        "fatal": fatal_outcome,
        "fatal_seconds": fatal_seconds,
        "usable_after": usable,
        "shut_down": "clean" if _shuts_down(engine, pool) else "hangs",
    }


def _shuts_down(engine: str, pool: Any) -> bool:
    """A clean shutdown, waiting for the workers, within SHUTDOWN_SECONDS."""
    if engine in ("multiprocessing.Pool", "pebble"):
        close = lambda: (pool.close(), pool.join())  # noqa: E731 -- one expression each
    else:
        close = lambda: pool.shutdown(wait=True)  # noqa: E731
    thread = threading.Thread(target=close, daemon=True)
    thread.start()
    thread.join(SHUTDOWN_SECONDS)
    return not thread.is_alive()


def measure(engine: str, workers: int, method: str) -> dict[str, Any]:
    """Run one engine in a child process; a child that never ends is a finding."""
    command = [sys.executable, __file__, "--child", engine, str(workers), method]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=CHILD_DEADLINE_SECONDS
        )
    except subprocess.TimeoutExpired:
        return {"engine": engine, "error": f"hung: no answer in {CHILD_DEADLINE_SECONDS} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"engine": engine, "error": tail}
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def child(engine: str, workers: int, method: str) -> None:
    print(json.dumps(run_engine(engine, workers, method)), flush=True)
    # An engine whose shutdown hung would also hang the interpreter's exit.
    os._exit(0)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start-method", default="fork")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    engines = ["minipool", "multiprocessing.Pool", "ProcessPoolExecutor"]
    for optional in ("loky", "pebble"):
        try:
            __import__(optional)
        except ImportError:
            print(f"({optional} not installed: skipped)")
        else:
            engines.append(optional)
    print(
        f"crash: {JOBS} jobs, job #{FATAL} SIGKILLs its worker; "
        f"{args.workers} workers, {args.start_method}"
    )
    if "loky" in engines and args.start_method == "fork":
        print("(loky does not allow fork: it runs with its own 'loky' start method)")
    header = (
        f"  {'engine':22} {'delivered':>10}  {'job #50 got':24} {'after':>7}  "
        f"{'usable after':12}  shutdown"
    )
    print(header)
    for engine in engines:
        report = measure(engine, args.workers, args.start_method)
        if "error" in report:
            print(f"  {engine:22} {report['error']}")
            continue
        seconds = report["fatal_seconds"]
        after = "-" if seconds is None else f"{seconds:.2f} s"
        print(
            f"  {engine:22} {report['delivered']:>6}/199  {report['fatal']:24} {after:>7}  "
            f"{'yes' if report['usable_after'] else 'no':12}  {report['shut_down']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
