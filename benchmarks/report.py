"""What a benchmark run found, and how it is printed: rows, metrics, targets.

A ``Metric`` is one table: a figure (tasks/s, microseconds per job...) for
several ``Row``s, each row one engine in one configuration with one sample
per round. Ratios are medians divided by the reference row's median
(a ``multiprocessing.Pool`` row); a ``Target`` judges a minipool row either by
that ratio or by its absolute figure. A run with ``--baseline REV`` has rows
of ``minipool@<rev>`` too, each printed beside its twin of minipool now with
the ratio of the two. Also the run's header: machine facts.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from engines import MINIPOOL, NAMES, is_peer

import minipool

HIGHER = "higher"
LOWER = "lower"


@dataclass
class Row:
    label: str
    engine: str
    samples: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Measured on less input than the other rows (an engine too slow for all
    # of it): shown, but never the best peer.
    partial: bool = False

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "engine": self.engine,
            "samples": self.samples,
            "median": self.median,
            "min": min(self.samples, default=None),
            "max": max(self.samples, default=None),
            "errors": self.errors,
            "partial": self.partial,
        }


@dataclass(frozen=True)
class Target:
    row: str  # the label of the minipool row it judges
    op: str  # ">=" or "<="
    limit: float
    relative: bool  # True: limit is a ratio to the reference; False: in the metric's unit
    stretch: bool = False  # a goal beyond the target: reported, never a failure

    def describe(self, unit: str) -> str:
        limit = (
            f"{self.limit:.2f}x the reference" if self.relative else format_value(self.limit, unit)
        )
        return f"{'stretch ' if self.stretch else ''}{self.op} {limit}"


@dataclass
class Metric:
    workload: str
    title: str
    unit: str
    better: str  # HIGHER or LOWER
    rows: list[Row]
    # Labels of the rows that may serve as reference; the best median among them wins.
    reference_candidates: tuple[str, ...]
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def row(self, label: str) -> Row:
        return next(row for row in self.rows if row.label == label)

    def reference(self) -> Row | None:
        measured = [self.row(label) for label in self.reference_candidates]
        measured = [row for row in measured if row.median is not None]
        if not measured:
            return None
        best = max if self.better == HIGHER else min
        return best(measured, key=lambda row: row.median or 0.0)

    def ratio(self, row: Row) -> float | None:
        reference = self.reference()
        if reference is None or row.median is None or not reference.median:
            return None
        return row.median / reference.median

    def verdict(self, target: Target) -> bool | None:
        row = self.row(target.row)
        value = self.ratio(row) if target.relative else row.median
        if value is None:
            return None
        return value >= target.limit if target.op == ">=" else value <= target.limit

    def baseline_pairs(self) -> list[tuple[Row, Row]]:
        """(minipool now, minipool at --baseline) for each baseline row whose twin ran."""
        by_label = {row.label: row for row in self.rows}
        pairs = []
        for row in self.rows:
            if row.engine != MINIPOOL and not is_peer(row.engine):
                now = by_label.get(MINIPOOL + row.label.removeprefix(row.engine))
                if now is not None:
                    pairs.append((now, row))
        return pairs

    def to_json(self) -> dict[str, Any]:
        reference = self.reference()
        return {
            "workload": self.workload,
            "title": self.title,
            "unit": self.unit,
            "better": self.better,
            "reference": reference.label if reference else None,
            "rows": [{**row.to_json(), "ratio": self.ratio(row)} for row in self.rows],
            "targets": [
                {**vars(target), "text": target.describe(self.unit), "pass": self.verdict(target)}
                for target in self.targets
            ],
            "notes": self.notes,
            "baseline": [
                {"now": now.label, "base": base.label, "ratio": ratio(now, base)}
                for now, base in self.baseline_pairs()
            ],
        }


def ratio(row: Row, other: Row) -> float | None:
    """``row``'s median over ``other``'s."""
    if row.median is None or not other.median:
        return None
    return row.median / other.median


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "tasks/s":
        return f"{value / 1e6:.2f}M/s" if value >= 1e6 else f"{value / 1e3:.1f}k/s"
    if unit == "us/job":
        return f"{value:.1f} us"
    if unit == "s":
        return f"{value * 1e3:.1f} ms"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "MB/s":
        return f"{value:,.0f} MB/s"
    if unit in ("efficiency", "x ideal"):
        return f"{value:.2f}"
    return f"{value:,.0f}"


def format_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return "<0.01x" if ratio < 0.01 else f"{ratio:.2f}x"


def verdict_text(passed: bool | None, stretch: bool = False) -> str:
    if stretch and passed is not None:
        return "met" if passed else "not met"
    return {True: "PASS", False: "FAIL", None: "NO DATA"}[passed]


def print_metric(metric: Metric) -> None:
    print(f"\n== {metric.workload}: {metric.title} [{metric.unit}, {metric.better} is better]")
    reference = metric.reference()
    width = max(len(row.label) for row in metric.rows)
    print(f"  {'engine':<{width}}  {'median':>10}  {'min':>10}  {'max':>10}  {'vs ref':>7}")
    for row in metric.rows:
        cells = [
            format_value(f(row.samples) if row.samples else None, metric.unit)
            for f in (statistics.median, min, max)
        ]
        mark = " <- reference" if row is reference else ""
        print(
            f"  {row.label:<{width}}  {cells[0]:>10}  {cells[1]:>10}  {cells[2]:>10}  "
            f"{format_ratio(metric.ratio(row)):>7}{mark}"
        )
        for error in row.errors:
            print(f"  {'':<{width}}  ERROR: {error}")
    for now, base in metric.baseline_pairs():
        print(
            f"  minipool now / {base.engine}: {format_ratio(ratio(now, base))} "
            f"({now.label.partition(': ')[2]}; {metric.better} is better)"
        )
    for note in metric.notes:
        print(f"  note: {note}")
    for target in metric.targets:
        print(
            f"  target: {target.row} {target.describe(metric.unit)}: "
            f"{_judged_figure(metric, target)}  "
            f"{verdict_text(metric.verdict(target), target.stretch)}"
        )


def _judged_figure(metric: Metric, target: Target) -> str:
    row = metric.row(target.row)
    if target.relative:
        return format_ratio(metric.ratio(row))
    return format_value(row.median, metric.unit)


def summary_rows(
    workers: int, metrics: list[Metric], baseline: str | None = None
) -> list[list[str]]:
    """One row per target; with a ``baseline`` engine, its twin's figure and now / then."""
    rows = []
    for metric in metrics:
        reference = metric.reference()
        twins = dict((now.label, base) for now, base in metric.baseline_pairs())
        for target in metric.targets:
            mine = metric.row(target.row)
            then = []
            if baseline is not None:
                base = twins.get(target.row)
                then = ["-", "-"]
                if base is not None:
                    then = [format_value(base.median, metric.unit), format_ratio(ratio(mine, base))]
            rows.append(
                [
                    str(workers),
                    f"{metric.workload} ({metric.unit})",
                    format_value(mine.median, metric.unit),
                    format_value(reference.median if reference else None, metric.unit),
                    format_ratio(metric.ratio(mine)),
                    target.describe(metric.unit),
                    verdict_text(metric.verdict(target), target.stretch),
                    *then,
                ]
            )
    return rows


def print_summary(rows: list[list[str]], baseline: str | None = None) -> None:
    header = ["workers", "workload", "minipool", "reference", "ratio", "target", "result"]
    if baseline is not None:
        header += [baseline, f"minipool / {baseline}"]
    print_table("summary (reference: the row marked in each table)", header, rows)


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    print(f"\n== {title}")
    for line in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        print(("  " + "  ".join(cells)).rstrip())


def machine_facts(here: str, start_method: str, workers: list[int], rounds: int) -> dict[str, Any]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "minipool": f"{minipool.__version__} ({git_revision(here)})",
        "start_method": start_method,
        "workers": workers,
        "rounds": rounds,
    }


def git_revision(here: str) -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "../minipool"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "git revision unknown"
    return f"git {head}{', minipool/ modified' if dirty else ''}"


def print_header(facts: dict[str, Any]) -> None:
    load = " ".join(f"{x:.2f}" for x in facts["load_average"] or [])
    workers = " ".join(map(str, facts["workers"]))
    print(f"minipool benchmark, {facts['date']}")
    print(f"  {facts['python']} on {facts['platform']}")
    print(f"  cpus: {facts['cpu_count']} ({facts['cpus_usable']} usable); load average {load}")
    print(f"  minipool {facts['minipool']}")
    print(
        f"  start method {facts['start_method']} for all engines; workers {workers}; "
        f"rounds {facts['rounds']}, engine order shuffled each round"
    )
    print("  engines: " + ", ".join(f"{key} = {name}" for key, name in NAMES.items()))
    if facts.get("baseline"):
        base = facts["baseline"]
        print(
            f"  baseline: {base['engine']} = minipool/ at git {base['commit']} "
            f"(--baseline {base['revision']}), imported as {base['package']} from {base['copy']}"
        )


# ---- the command line of the one-table benchmarks (bench_logs, bench_runner) -------

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def add_start_method(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--start-method",
        default="fork",
        choices=multiprocessing.get_all_start_methods(),
        help="start method for every engine that allows one (default: fork)",
    )


def add_run_options(parser: argparse.ArgumentParser, *, rounds: int, json_name: str) -> None:
    """``--workers``, ``--rounds``, ``--start-method`` and ``--json``."""
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--rounds", type=int, default=rounds, help=f"rounds ({rounds})")
    add_start_method(parser)
    add_json(parser, json_name)


def add_json(parser: argparse.ArgumentParser, json_name: str) -> None:
    parser.add_argument(
        "--json",
        nargs="?",
        const=os.path.join(RESULTS, json_name),
        default=None,
        metavar="OUT",
        help=f"write raw numbers as JSON (default path: benchmarks/results/{json_name})",
    )


def add_scale(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scale",
        type=_scale,
        default=1.0,
        help="multiply every workload's jobs and items by this (default: 1; 0.01 for a smoke run)",
    )


def _scale(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 1, got {text}")
    return value


def write_json(path: str, data: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as out:
        json.dump(data, out, indent=2)
    print(f"\nraw numbers written to {path}")


def finish(json_path: str | None, facts: dict[str, Any], metrics: list[Metric]) -> int:
    """Print the tables, write the JSON if asked; 1 if any sample failed."""
    for metric in metrics:
        print_metric(metric)
    if json_path:
        write_json(json_path, {"machine": facts, "metrics": [m.to_json() for m in metrics]})
    return 1 if any(row.errors for metric in metrics for row in metric.rows) else 0


# ---- reading the raw numbers back (run_all, chart) -----------------------------------


@dataclass(frozen=True)
class Judged:
    """One target of a run, read back from its JSON: minipool's row and the best peer's."""

    workers: int
    metric: dict[str, Any]
    target: dict[str, Any]
    mine: dict[str, Any]
    best_peer: dict[str, Any] | None  # the best row of another engine; None if none ran

    @property
    def advantage(self) -> float | None:
        """minipool's figure over the best peer's, above 1 when minipool is better."""
        mine = self.mine["median"]
        peer = self.best_peer["median"] if self.best_peer else None
        if not mine or not peer:
            return None
        return mine / peer if self.metric["better"] == HIGHER else peer / mine


def judged(metrics: list[dict[str, Any]], workers: int) -> list[Judged]:
    found = []
    for metric in metrics:
        peers = [
            row
            for row in metric["rows"]
            if is_peer(row["engine"])
            and row["engine"] != "bare"
            and row["median"] is not None
            and not row["partial"]
        ]
        best = max if metric["better"] == HIGHER else min
        best_peer = best(peers, key=lambda row: row["median"], default=None)
        for target in metric["targets"]:
            mine = next(row for row in metric["rows"] if row["label"] == target["row"])
            found.append(Judged(workers, metric, target, mine, best_peer))
    return found
