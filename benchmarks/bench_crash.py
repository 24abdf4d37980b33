"""Job #50 of 200 SIGKILLs its worker: who delivers the other 199, and who survives?

    python benchmarks/bench_crash.py [--start-method fork] [--workers 2] [--json [OUT]]

Each engine runs in a fresh child process with a deadline, because some of
them never return: ``multiprocessing.Pool`` leaves the killed job pending
forever. For each engine the table gives the correct results delivered (of
199), what job #50 got and how many seconds after the 200 jobs were
submitted, whether the pool then runs a new job, and whether it shuts down.
loky, pebble, mpire and joblib are measured when installed. The exit status
is 1 when minipool's own row errs or misses its target; a peer that loses
results or hangs is the finding, not an error.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import report  # noqa: E402 -- importable once this file's directory is on sys.path
import tasks  # noqa: E402

JOBS = 200
FATAL = 50
# Per engine, for all 200 outcomes, then for the one job submitted after the
# crash, then for the shutdown (--wait: a smoke run shortens them).
WAIT_SECONDS = 10.0
# Above the three waits together, so that a child ends by its own deadlines
# unless something those waits do not cover hangs.
CHILD_SPARE_SECONDS = 30
PENDING = "no outcome (pending)"
TARGET = f"minipool {JOBS - 1}/{JOBS - 1}, WorkerCrashed, usable after, clean shutdown"
LOKY_FORK_NOTE = "loky refuses fork; under fork it runs with its own 'loky' start method"
JOBLIB_NOTE = (
    "joblib runs on loky's reusable executor and its 'loky' start method, whatever "
    "--start-method says; it has no submit(): its generator is read until it raises"
)


@dataclass(frozen=True)
class Opened:
    """A started pool, seen through the two calls the benchmark makes."""

    submit: Callable[..., Callable[[float], Any]]  # submit(fn, *args) -> wait(timeout) -> value
    shutdown: Callable[[], object]  # the clean one: every worker joined


def _futures(pool: Any) -> Opened:
    """A ``concurrent.futures.Executor``: ``submit()``, then ``shutdown(wait=True)``."""
    return Opened(lambda fn, *args: pool.submit(fn, *args).result, lambda: pool.shutdown(wait=True))


def _close_join(pool: Any, submit: Callable[..., Callable[[float], Any]]) -> Opened:
    return Opened(submit, lambda: (pool.close(), pool.join()))


def _open_minipool(workers: int, method: str) -> Opened:
    import minipool

    return _futures(minipool.Pool(workers, start_method=method))


def _open_multiprocessing(workers: int, method: str) -> Opened:
    pool = multiprocessing.get_context(method).Pool(workers)
    return _close_join(pool, lambda fn, *args: pool.apply_async(fn, args).get)


def _open_executor(workers: int, method: str) -> Opened:
    return _futures(ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)))


def _open_loky(workers: int, method: str) -> Opened:
    import loky

    return _futures(
        loky.get_reusable_executor(workers, context="loky" if method == "fork" else method)
    )


def _open_pebble(workers: int, method: str) -> Opened:
    import pebble

    pool = pebble.ProcessPool(workers, context=multiprocessing.get_context(method))
    return _close_join(pool, lambda fn, *args: pool.schedule(fn, args=args).result)


def _open_mpire(workers: int, method: str) -> Opened:
    import mpire

    pool = mpire.WorkerPool(workers, start_method=method)
    # Not its ``with``: leaving that calls terminate(), which kills the workers.
    return Opened(lambda fn, *args: pool.apply_async(fn, args).get, pool.stop_and_join)


# The engines with a submit(), in the table's order; joblib has its own run.
OPENERS: dict[str, Callable[[int, str], Opened]] = {
    "minipool": _open_minipool,
    "multiprocessing.Pool": _open_multiprocessing,
    "ProcessPoolExecutor": _open_executor,
    "loky": _open_loky,
    "pebble": _open_pebble,
    "mpire": _open_mpire,
}
OPTIONAL = ("loky", "pebble", "mpire", "joblib")


def run_engine(engine: str, workers: int, method: str, wait: float) -> dict[str, Any]:
    """Runs in the child: the engine's report, as one JSON-ready dict."""
    if engine == "joblib":
        return _run_joblib(workers, wait)
    return _run_submitting(engine, workers, method, wait)


def _run_submitting(engine: str, workers: int, method: str, wait: float) -> dict[str, Any]:
    """Submit 200 jobs, gather every outcome before a deadline, then test the pool."""
    pool = OPENERS[engine](workers, method)
    submitted = time.monotonic()
    waits = [pool.submit(tasks.die_at, x, FATAL) for x in range(JOBS)]
    deadline = submitted + wait
    delivered = 0
    fatal, fatal_seconds = PENDING, None
    for x, result in enumerate(waits):
        try:
            value = result(max(0.0, deadline - time.monotonic()))
        except Exception as error:  # one per engine: each reports its own way
            if x == FATAL and not _is_timeout(error):
                fatal, fatal_seconds = type(error).__name__, time.monotonic() - submitted
            continue
        delivered += value == x + 1
    try:
        usable = pool.submit(tasks.inc, 1)(wait) == 2
    except Exception:
        usable = False
    shut_down = _shut_down(pool.shutdown, wait)
    return _report(engine, delivered, fatal, fatal_seconds, usable, shut_down)


def _run_joblib(workers: int, wait: float) -> dict[str, Any]:
    """joblib has no submit(): count what its generator yields before it raises."""
    import joblib

    started = time.monotonic()
    parallel = joblib.Parallel(n_jobs=workers, return_as="generator", timeout=wait)
    delivered = 0
    fatal, fatal_seconds = PENDING, None
    try:
        for x, value in enumerate(
            parallel(joblib.delayed(tasks.die_at)(x, FATAL) for x in range(JOBS))
        ):
            delivered += value == x + 1
    except Exception as error:  # joblib raises the first failure, in job order
        if not _is_timeout(error):
            fatal, fatal_seconds = type(error).__name__, time.monotonic() - started
    try:
        again = joblib.Parallel(n_jobs=workers, timeout=wait)
        usable = again(joblib.delayed(tasks.inc)(1) for _ in range(1)) == [2]
    except Exception:
        usable = False
    # Its workers stay up for the next Parallel call: there is no shutdown to wait for.
    return _report("joblib", delivered, fatal, fatal_seconds, usable, "n/a (reusable executor)")


def _is_timeout(error: Exception) -> bool:
    """Our own wait ran out (each engine names its timeout differently)."""
    return "Timeout" in type(error).__name__


def _report(
    engine: str,
    delivered: int,
    fatal: str,
    fatal_seconds: float | None,
    usable: bool,
    shut_down: str,
) -> dict[str, Any]:
    return {
        "engine": engine,
        "delivered": delivered,
        "fatal": fatal,
        "fatal_seconds": fatal_seconds,
        "usable_after": usable,
        "shut_down": shut_down,
    }


def _shut_down(shutdown: Callable[[], object], wait: float) -> str:
    """How ``shutdown()`` ends: "clean", "hangs" (past ``wait``) or "raises X"."""
    raised: list[BaseException] = []

    def call() -> None:
        try:
            shutdown()
        except BaseException as error:  # the finding, reported in the table
            raised.append(error)

    thread = threading.Thread(target=call, daemon=True)  # a hung one is left behind
    thread.start()
    thread.join(wait)
    if thread.is_alive():
        return "hangs"
    return f"raises {type(raised[0]).__name__}" if raised else "clean"


def measure(engine: str, workers: int, method: str, wait: float) -> dict[str, Any]:
    """Run one engine in a child process; a child that never ends is a finding.

    The child gets a session of its own, and whatever of it is still alive once
    it has answered (or missed its deadline) is killed: workers a shutdown left
    hanging, joblib's reusable ones. Its output goes to files, not pipes: those
    workers inherit the pipes, and reading to EOF would wait for them.
    """
    command = [sys.executable, __file__, "--child", engine, str(workers), method, str(wait)]
    deadline = 3 * wait + CHILD_SPARE_SECONDS
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(
            command, stdout=out, stderr=err, text=True, start_new_session=True
        )
        try:
            process.wait(deadline)
        except subprocess.TimeoutExpired:
            return {"engine": engine, "error": f"hung: no answer in {deadline:.0f} s"}
        finally:
            _kill_session(process)
        out.seek(0)
        err.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
        if not lines:
            tail = (err.read().strip().splitlines() or ["no output"])[-1]
            return {"engine": engine, "error": tail}
    found: dict[str, Any] = json.loads(lines[-1])
    return found


def _kill_session(process: subprocess.Popen[str]) -> None:
    """SIGKILL every process left in the child's session, then reap the child."""
    # ProcessLookupError: nothing left, the child's workers all ended with it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def child(engine: str, workers: int, method: str, wait: float) -> None:
    print(json.dumps(run_engine(engine, workers, method, wait)), flush=True)
    # An engine whose shutdown hung would also hang the interpreter's exit.
    os._exit(0)


def target_misses(found: dict[str, Any]) -> list[str]:
    """What minipool's row lacks for its target; empty when it passes."""
    if "error" in found:
        return [found["error"]]
    checks = [
        (found["delivered"] == JOBS - 1, f"{found['delivered']}/{JOBS - 1} delivered"),
        (found["fatal"] == "WorkerCrashed", f"job #{FATAL} got {found['fatal']}"),
        (found["usable_after"], "not usable after"),
        (found["shut_down"] == "clean", f"shutdown {found['shut_down']}"),
    ]
    return [miss for passed, miss in checks if not passed]


def installed_engines() -> list[str]:
    engines = [name for name in OPENERS if name not in OPTIONAL]
    for name in OPTIONAL:
        if importlib.util.find_spec(name):
            engines.append(name)
        else:
            print(f"({name} not installed: skipped)")
    return engines


def print_row(found: dict[str, Any]) -> None:
    engine = found["engine"]
    if "error" in found:
        print(f"  {engine:22} {found['error']}")
        return
    seconds = found["fatal_seconds"]
    after = "-" if seconds is None else f"{seconds:.2f} s"
    print(
        f"  {engine:22} {found['delivered']:>6}/{JOBS - 1}  {found['fatal']:24} {after:>7}  "
        f"{'yes' if found['usable_after'] else 'no':12}  {found['shut_down']}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    report.add_start_method(parser)
    parser.add_argument(
        "--wait",
        type=float,
        default=WAIT_SECONDS,
        help=f"seconds to wait for the outcomes, then for the shutdown ({WAIT_SECONDS:.0f})",
    )
    parser.add_argument(
        "--json",
        nargs="?",
        const=os.path.join(report.RESULTS, "crash.json"),
        default=None,
        metavar="OUT",
        help="write the rows as JSON (default path: benchmarks/results/crash.json)",
    )
    return parser.parse_args()


def notes(engines: list[str], method: str) -> list[str]:
    """Where an engine does not run as the command line asked."""
    found = []
    if "loky" in engines and method == "fork":
        found.append(LOKY_FORK_NOTE)
    if "joblib" in engines:
        found.append(JOBLIB_NOTE)
    return found


def run_table(engines: list[str], workers: int, method: str, wait: float) -> list[dict[str, Any]]:
    """Measure each engine in turn, printing its row as soon as it is in."""
    print(
        f"  {'engine':22} {'delivered':>10}  {f'job #{FATAL} got':24} {'after':>7}  "
        f"{'usable after':12}  shutdown"
    )
    rows = []
    for engine in engines:
        rows.append(measure(engine, workers, method, wait))
        print_row(rows[-1])
    return rows


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
        return 0
    args = parse_args()
    engines = installed_engines()
    print(
        f"crash: {JOBS} jobs, job #{FATAL} SIGKILLs its worker; "
        f"{args.workers} workers, {args.start_method}"
    )
    for note in notes(engines, args.start_method):
        print(f"({note})")
    rows = run_table(engines, args.workers, args.start_method, args.wait)
    misses = target_misses(next(row for row in rows if row["engine"] == "minipool"))
    print(f"  target: {TARGET}: {'PASS' if not misses else 'FAIL (' + '; '.join(misses) + ')'}")
    if args.json:
        facts = report.machine_facts(HERE, args.start_method, [args.workers], 1)
        data = {"machine": facts, "jobs": JOBS, "fatal": FATAL}
        target = {"text": TARGET, "pass": not misses, "missing": misses}
        data |= {"notes": notes(engines, args.start_method), "engines": rows, "target": target}
        report.write_json(args.json, data)
    return 1 if misses else 0


if __name__ == "__main__":
    raise SystemExit(main())
