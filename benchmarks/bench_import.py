"""How long ``import minipool`` takes, beside the stdlib's process pools and the peers.

    python benchmarks/bench_import.py [--rounds 40] [--json [OUT]]

A command-line tool that opens a pool pays for the import on every run.
minipool's modules are compiled first, as pip compiles an installed package's:
an editable install under ``PYTHONDONTWRITEBYTECODE`` (set on the machines
these figures come from) would compile them again at every import, which
the installed peers never do. Each
round starts one fresh interpreter per module, in an order shuffled per
round, and times ``import MODULE`` inside it (``perf_counter`` around the
statement: the interpreter's own start, the same for all, is left out).
The first table gives each module's median and its ratio to
``concurrent.futures.process``, the stdlib module that ``ProcessPoolExecutor``
lives in; minipool's target is at most 1.00x. minipool, like
``concurrent.futures``, loads its pool's modules on first use, so a second
table times an import that loads each pool class, for comparison. loky,
pebble, mpire and joblib are measured when installed. The exit status is 1 when a sample fails or
minipool misses its target.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import report  # noqa: E402 -- importable once this file's directory is on sys.path
from engines import round_order  # noqa: E402
from report import LOWER, Metric, Row, Target  # noqa: E402

REFERENCE = "concurrent.futures.process"
MODULES = (
    "minipool",
    REFERENCE,
    "multiprocessing.pool",
    "loky",
    "pebble",
    "mpire",
    "joblib",
)
# The pool class each offers, from an import that loads it: minipool, like
# concurrent.futures, loads its pool on first use.
POOL_CLASSES = {
    "minipool.Pool": "import minipool; minipool.Pool",
    "ProcessPoolExecutor": "from concurrent.futures import ProcessPoolExecutor",
    "multiprocessing.Pool": "from multiprocessing.pool import Pool",
    "loky": "from loky import get_reusable_executor",
    "pebble": "from pebble import ProcessPool",
    "mpire": "from mpire import WorkerPool",
    "joblib": "from joblib import Parallel",
}
TARGET_RATIO = 1.0
TIMER = "import time; t = time.perf_counter(); {0}; print(time.perf_counter() - t)"


def import_seconds(statement: str) -> float:
    """Seconds ``statement`` takes in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", TIMER.format(statement)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    return float(done.stdout)


def installed(statement: str) -> bool:
    module = statement.split()[1].rstrip(";")
    return importlib.util.find_spec(module.partition(".")[0]) is not None


def sample(statements: dict[str, str], rounds: int) -> list[Row]:
    """Rows of milliseconds per label, the labels in a shuffled order each round."""
    statements = {label: code for label, code in statements.items() if installed(code)}
    rows = {label: Row(label, label.partition(".")[0]) for label in statements}
    for round_index in range(rounds):
        for label in round_order(round_index, tuple(statements)):
            try:
                rows[label].samples.append(import_seconds(statements[label]) * 1000)
            except Exception as error:
                rows[label].errors.append(f"{type(error).__name__}: {error}")
    return list(rows.values())


def measure(rounds: int) -> list[Metric]:
    modules = sample({module: f"import {module}" for module in MODULES}, rounds)
    classes = sample(POOL_CLASSES, rounds)
    return [
        Metric(
            workload="import",
            title="import MODULE in a fresh interpreter",
            unit="ms",
            better=LOWER,
            rows=modules,
            reference_candidates=(REFERENCE,),
            targets=[Target("minipool", "<=", TARGET_RATIO, relative=True)],
            notes=["the reference is the stdlib module ProcessPoolExecutor lives in"],
        ),
        Metric(
            workload="import_pool",
            title="import a pool class in a fresh interpreter (for comparison)",
            unit="ms",
            better=LOWER,
            rows=classes,
            reference_candidates=("ProcessPoolExecutor",),
            notes=["starting a pool and its first result: bench_engine.py --only startup"],
        ),
    ]


def compile_minipool() -> None:
    """Write minipool's bytecode, as ``pip install`` does (whatever the environment says)."""
    package = os.path.join(os.path.dirname(HERE), "minipool")
    compileall.compile_dir(package, quiet=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="interpreters per module (40)")
    report.add_json(parser, "import.json")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    compile_minipool()
    facts = report.machine_facts(HERE, "none", [0], args.rounds)
    report.print_header(facts)
    metrics = measure(args.rounds)
    failed = report.finish(args.json, facts, metrics)
    missed = any(m.verdict(target) is False for m in metrics for target in m.targets)
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())
