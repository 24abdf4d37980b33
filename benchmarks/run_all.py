"""The whole benchmark suite in one command: every workload, every peer, JSON, a table, a chart.

    python benchmarks/run_all.py [--workers 2] [--rounds 5] [--start-method fork]
                                 [--scale 1] [--out benchmarks/results] [--baseline REV]

Runs, one after another and each in a process of its own, as when run alone:

- ``bench_engine.py``: every workload at ``--workers``;
- ``bench_engine.py --only tiny_map tiny_submit`` at 1, 2, 4 and 8 workers:
  how the cost grows with workers (more workers than cores shows the
  master loop's own overhead);
- ``bench_master.py`` at 1 to 32 workers: the caller's CPU per chunk and per
  job beside the standard library's pools, and the worker count at which it
  would take one core;
- ``bench_logs.py``: worker logs against the logging cookbook;
- ``bench_crash.py``: a job that SIGKILLs its worker.

``--baseline REV`` goes to both ``bench_engine.py`` runs: minipool at git
revision REV measured beside minipool now (never counted as a peer).

Each prints its own tables as it goes. Then this prints one summary of every
target and writes, in ``--out``: each part's raw numbers, ``suite.json`` (all of
them), ``summary.md`` (the table README shows) and ``chart.png`` (minipool
against the best peer; matplotlib, from the ``bench`` extra). Exit status 1 if
a part failed (an engine error, a minipool sample that lost a result).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import chart  # noqa: E402 -- importable once this file's directory is on sys.path
import report  # noqa: E402 -- likewise

PARTS = ("engine", "scaling", "master", "logs", "crash")
SCALING_WORKERS = (1, 2, 4, 8)
# The master's own cost, per chunk and per job: oversubscribed past the cores
# here, which that figure allows (its jobs sleep).
MASTER_WORKERS = (1, 2, 4, 8, 16, 32)
LOG_JOBS = 20_000
HEADER = ["workers", "workload", "minipool", "best peer", "minipool's lead", "target", "result"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="workers for the main run (2)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per workload (5)")
    report.add_start_method(parser)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply jobs and items (default 1; 0.01: smoke)"
    )
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="where the results go")
    parser.add_argument(
        "--only", nargs="+", choices=PARTS, metavar="PART", help=f"run only: {', '.join(PARTS)}"
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="bench_engine.py --baseline REV: also measure minipool/ at this git revision",
    )
    args = parser.parse_args(argv)
    if min(args.workers, args.rounds) < 1 or not 0 < args.scale <= 1:
        parser.error("--workers and --rounds must be at least 1, --scale in (0, 1]")
    return args


def parts(args: argparse.Namespace) -> dict[str, list[str]]:
    """Each part's script and arguments, ``--json`` aside."""
    method = ["--start-method", args.start_method]
    common = ["--rounds", str(args.rounds), *method]
    engine_only = ["--scale", str(args.scale)]  # what bench_engine.py takes and the rest do not
    if args.baseline is not None:
        engine_only += ["--baseline", args.baseline]
    log_jobs = str(max(1, round(LOG_JOBS * args.scale)))
    return {
        "engine": ["bench_engine.py", "--workers", str(args.workers), *common, *engine_only],
        "scaling": [
            "bench_engine.py",
            "--workers",
            *map(str, SCALING_WORKERS),
            "--only",
            "tiny_map",
            "tiny_submit",
            *common,
            *engine_only,
        ],
        "master": [
            "bench_master.py",
            "--workers",
            *map(str, MASTER_WORKERS),
            *common,
            "--scale",
            str(args.scale),
        ],
        "logs": ["bench_logs.py", "--workers", str(args.workers), "--jobs", log_jobs, *common],
        "crash": ["bench_crash.py", "--workers", str(args.workers), *method],
    }


def run_part(name: str, command: list[str], out: str) -> tuple[dict[str, Any] | None, bool]:
    """Run one part, its output straight to ours; its JSON, and whether it succeeded."""
    path = os.path.join(out, f"{name}.json")
    if os.path.exists(path):
        os.remove(path)  # a failed run must not leave the last run's numbers standing
    print(f"\n#### {name}: python benchmarks/{shlex.join(command)}", flush=True)
    done = subprocess.run(
        [sys.executable, os.path.join(HERE, command[0]), *command[1:], "--json", path]
    )
    if not os.path.exists(path):
        return None, False
    with open(path) as source:
        return json.load(source), done.returncode == 0


def summary(suite: dict[str, Any]) -> list[list[str]]:
    rows = []
    for part in ("engine", "scaling", "master"):
        for run in (suite[part] or {}).get("runs", []):
            rows += [judged_row(item) for item in report.judged(run["metrics"], run["workers"])]
    if suite.get("logs"):
        workers = suite["logs"]["machine"]["workers"][0]
        rows += [judged_row(item) for item in report.judged(suite["logs"]["metrics"], workers)]
    if suite.get("crash"):
        rows.append(crash_row(suite["crash"]))
    return rows


def judged_row(item: report.Judged) -> list[str]:
    unit = item.metric["unit"]
    peer = item.best_peer
    return [
        str(item.workers),
        f"{item.metric['workload']} ({unit})",
        report.format_value(item.mine["median"], unit),
        f"{report.format_value(peer['median'], unit)} ({peer['label']})" if peer else "-",
        report.format_ratio(item.advantage),
        item.target["text"],
        report.verdict_text(item.target["pass"], item.target["stretch"]),
    ]


def crash_row(crash: dict[str, Any]) -> list[str]:
    found = {engine["engine"]: engine for engine in crash["engines"]}
    mine = found.get("minipool", {})
    peers = [e for name, e in found.items() if name != "minipool" and "error" not in e]
    best = max(peers, key=crash_standing, default=None)
    return [
        str(crash["machine"]["workers"][0]),
        "crash (results of 199)",
        crash_outcome(mine),
        f"{crash_outcome(best)} ({best['engine']})" if best else "-",
        "-",
        crash["target"]["text"],
        report.verdict_text(crash["target"]["pass"]),
    ]


def crash_standing(engine: dict[str, Any]) -> tuple[int, bool, bool, bool]:
    """What ranks one engine's crash row: results kept, #50 answered, usable, clean shutdown."""
    answered = engine["fatal"] != "no outcome (pending)"
    return engine["delivered"], answered, engine["usable_after"], engine["shut_down"] == "clean"


def crash_outcome(engine: dict[str, Any] | None) -> str:
    if not engine or "error" in engine:
        return (engine or {}).get("error", "-")
    usable = "usable after" if engine["usable_after"] else "unusable after"
    return f"{engine['delivered']}/199, {engine['fatal']}, {usable}"


def markdown(suite: dict[str, Any], rows: list[list[str]]) -> str:
    machine = suite["machine"]
    lines = [
        f"Measured {machine['date'][:10]} on {machine['cpu_count']} CPUs "
        f"({machine['platform']}), {machine['python']}, start method "
        f"{machine['start_method']}, {machine['rounds']} rounds, minipool {machine['minipool']}.",
        f"Command: `{suite['command']}`. Medians; each figure is against peers measured "
        "in the same run.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + " --- |" * len(HEADER),
        *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    command = "python benchmarks/run_all.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    suite: dict[str, Any] = {"command": command.strip()}
    failed = []
    for name, part in parts(args).items():
        suite[name] = None
        if name in (args.only or PARTS):
            suite[name], succeeded = run_part(name, part, args.out)
            if not succeeded:
                failed.append(name)
    found = [suite[name] for name in PARTS if suite[name] is not None]
    if not found:
        print("\nno part left numbers: no summary", file=sys.stderr)
        return 1
    suite["machine"] = found[0]["machine"]
    rows = summary(suite)
    report.print_table(
        "summary of every target (best peer: measured in the same run)", HEADER, rows
    )
    report.write_json(os.path.join(args.out, "suite.json"), suite)
    with open(os.path.join(args.out, "summary.md"), "w") as out:
        out.write(markdown(suite, rows))
    draw_chart(suite, os.path.join(args.out, "chart.png"))
    if failed:
        print(f"\nparts that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def draw_chart(suite: dict[str, Any], path: str) -> None:
    try:
        chart.draw(suite, path)
    except ImportError:
        print("no chart: matplotlib is not installed (pip install -e '.[bench]')")
        return
    print(f"chart written to {path}")


if __name__ == "__main__":
    sys.exit(main())
