"""``python -m minipool run`` over a million JSON lines, against a plain loop, in one run.

    python benchmarks/bench_runner.py [--records 1000000] [--workers 2] [--rounds 3]
                                      [--start-method fork] [--json [OUT.json]]

The trivial function (``tasks.scale``) makes this a measure of the runner's
own cost: reading, shipping, decoding, encoding and writing a record. The
reference is the single-process loop a user would write instead: read a
line, ``json.loads``, call, ``json.dumps``, write. Each sample runs in a fresh
process, so its peak RSS (the runner's own, not its workers') is its own.
A third row times ``--resume`` on the complete output: it must find nothing
to do, in seconds, and run no record.
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
from minipool._runner.cli import main
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


def run_child(code: str, args: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one child process running ``code``."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code.format(here=HERE), *args],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_SECONDS,
        env={**os.environ, "PYTHONPATH": HERE},
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
    speed = {label: Row(label, label) for label in (RUNNER, LOOP)}
    memory = {label: Row(label, label) for label in (RUNNER, LOOP)}
    resume = Row(RESUME, RESUME)
    for round_index in range(args.rounds):
        order = [RUNNER, LOOP] if round_index % 2 == 0 else [LOOP, RUNNER]
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
