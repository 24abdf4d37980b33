"""``python -m minipool run`` over a million JSON lines, against a plain loop, in one run.

    python benchmarks/bench_runner.py [--records 1000000] [--workers 2] [--rounds 3]
                                      [--start-method fork] [--json [OUT.json]]
                                      [--baseline REV]

The trivial function (``tasks.scale``) makes this a measure of the runner's
own cost: reading, shipping, decoding, encoding and writing a record. The
reference is the single-process loop a user would write instead: read a
line, ``json.loads``, call, ``json.dumps``, write. Each sample runs in a fresh
process, so its peak RSS (the runner's own, not its workers') is its own.
A third row times ``--resume`` on the complete output: it must find nothing
to do, in seconds, and run no record. ``--baseline REV`` adds the runner as
it was at git revision REV (its package unpacked with ``git archive`` into a
temporary directory put first on the child's path), run interleaved with
today's, so that a regression shows as a ratio from one run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import report  # noqa: E402 -- importable once this file's directory is on sys.path
from report import HIGHER, LOWER, Metric, Row, Target  # noqa: E402 -- likewise

CHILD_TIMEOUT_SECONDS = 600
RUNNER = "minipool run"
LOOP = "single-process loop"
RESUME = "minipool run --resume (complete output)"

# Runs the command line in this process and reports its own peak RSS on stderr.
RUNNER_CHILD = """
import resource, sys
sys.path.insert(0, {here!r})
try:
    from minipool._runner.cli import main
except ImportError:  # a --baseline from before the runner was a package
    from minipool._cli import main
status = main(sys.argv[1:])
print("maxrss_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(status)
"""

LOOP_CHILD = """
import json, resource, sys
sys.path.insert(0, {here!r})
import tasks
source, target = sys.argv[1], sys.argv[2]
with open(source) as lines, open(target, "w") as out:
    for index, line in enumerate(lines):
        result = tasks.scale(json.loads(line))
        out.write(json.dumps({{"index": index, "result": result}}) + "\\n")
print("maxrss_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def make_input(path: str, records: int) -> None:
    with open(path, "w") as out:
        for index in range(records):
            out.write(f'{{"id": {index}, "value": {index * 0.5}, "tag": "t{index % 97}"}}\n')


def run_child(code: str, args: list[str], package: str | None = None) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one child process running ``code``, with minipool
    imported from the directory ``package`` if given (a --baseline)."""
    started = time.perf_counter()
    path = os.pathsep.join(filter(None, [package, HERE]))
    done = subprocess.run(
        [sys.executable, "-c", code.format(here=HERE), *args],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_SECONDS,
        env={**os.environ, "PYTHONPATH": path},
        cwd=package or None,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr.strip()[-500:]}")
    rss_kb = next(
        int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("maxrss_kb")
    )
    return seconds, rss_kb / 1024


def check_output(path: str, records: int) -> None:
    with open(path) as lines:
        count = sum(1 for line in lines if line.startswith('{"index": '))
    if count != records:
        raise AssertionError(f"{count} of {records} output lines")


def unpack_baseline(revision: str, workdir: str) -> tuple[str, str]:
    """minipool's package at git ``revision``, unpacked under ``workdir``: its row's
    label and the directory to import it from."""
    commit = subprocess.run(
        ["git", "-C", HERE, "rev-parse", "--short", "--verify", f"{revision}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    directory = os.path.join(workdir, f"baseline-{commit}")
    os.mkdir(directory)
    archive = subprocess.run(
        ["git", "-C", os.path.dirname(HERE), "archive", commit, "minipool"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", directory], input=archive, check=True)
    return f"{RUNNER} @{commit}", directory


def measure(args: argparse.Namespace, workdir: str) -> list[Metric]:
    source = os.path.join(workdir, "in.jsonl")
    make_input(source, args.records)
    runner_out, loop_out = (os.path.join(workdir, name) for name in ("run.jsonl", "loop.jsonl"))
    runner_args = [
        "run",
        "tasks:scale",
        "--input",
        source,
        "--output",
        runner_out,
        "--workers",
        str(args.workers),
        "--start-method",
        args.start_method,
        "--no-progress",
    ]
    cases: dict[str, Callable[[], tuple[float, float]]] = {
        RUNNER: lambda: run_child(RUNNER_CHILD, runner_args),
        LOOP: lambda: run_child(LOOP_CHILD, [source, loop_out]),
        RESUME: lambda: run_child(RUNNER_CHILD, [*runner_args, "--resume"]),
    }
    timed = [RUNNER, LOOP]
    if args.baseline is not None:
        label, package = unpack_baseline(args.baseline, workdir)
        cases[label] = lambda: run_child(RUNNER_CHILD, runner_args, package)
        timed.insert(1, label)
    speed = {label: Row(label, label) for label in timed}
    memory = {label: Row(label, label) for label in timed}
    resume = Row(RESUME, RESUME)
    for round_index in range(args.rounds):
        order = timed if round_index % 2 == 0 else timed[::-1]
        for label in [*order, RESUME]:  # --resume needs the runner's complete output
            try:
                seconds, rss = cases[label]()
                check_output(runner_out if label != LOOP else loop_out, args.records)
            except Exception as error:
                (resume if label == RESUME else speed[label]).errors.append(str(error))
                continue
            if label == RESUME:
                resume.samples.append(seconds)
            else:
                speed[label].samples.append(args.records / seconds)
                memory[label].samples.append(rss)
    return [
        Metric(
            "runner",
            f"{args.records:,} JSON lines through a trivial function",
            "records/s",
            HIGHER,
            list(speed.values()),
            reference_candidates=(LOOP,),
        ),
        Metric(
            "runner_rss",
            "peak RSS of the process that reads and writes (workers not counted)",
            "MB",
            LOWER,
            list(memory.values()),
            reference_candidates=(LOOP,),
            targets=[Target(RUNNER, "<=", 100.0, relative=False)],
        ),
        Metric(
            "runner_resume",
            "--resume on the complete output: nothing to run",
            "s",
            LOWER,
            [resume],
            reference_candidates=(RESUME,),
            targets=[Target(RESUME, "<=", 10.0, relative=False)],
        ),
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="JSON lines (1000000)")
    parser.add_argument(
        "--baseline", metavar="REV", help="also time the runner at this git revision"
    )
    report.add_run_options(parser, rounds=3, json_name="runner.json")
    args = parser.parse_args(argv)
    if min(args.records, args.workers, args.rounds) < 1:
        parser.error("--records, --workers and --rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    facts = report.machine_facts(HERE, args.start_method, [args.workers], args.rounds)
    report.print_header(facts)
    with tempfile.TemporaryDirectory(prefix="minipool-bench-runner-") as workdir:
        metrics = measure(args, workdir)
    return report.finish(args.json, facts, metrics)


if __name__ == "__main__":
    sys.exit(main())
