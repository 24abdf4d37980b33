"""The suite's chart: minipool against the best peer on each workload, and how cost grows.

    python benchmarks/chart.py [SUITE.json] [OUT.png]

Reads what ``run_all.py`` wrote (default ``benchmarks/results/suite.json``)
and draws, into one PNG: a bar per judged workload, minipool's figure over the
best peer's in the same run (right of 1 is minipool ahead, whatever the unit);
then ``tiny_map`` and ``tiny_submit`` at each worker count, minipool against
the best peer there. matplotlib comes from the ``bench`` extra.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import report  # noqa: E402 -- importable once this file's directory is on sys.path

DEFAULT_SUITE = os.path.join(HERE, "results", "suite.json")
MINIPOOL_COLOR, PEER_COLOR, BEHIND_COLOR = "#2b6cb0", "#a0aec0", "#c53030"


def advantages(suite: dict[str, Any]) -> list[report.Judged]:
    """The judged targets of the main run and of the logs benchmark, stretch goals left out."""
    found = []
    for run in (suite["engine"] or {}).get("runs", []):
        found += report.judged(run["metrics"], run["workers"])
    if suite["logs"]:
        found += report.judged(suite["logs"]["metrics"], suite["logs"]["machine"]["workers"][0])
    return [item for item in found if not item.target["stretch"] and item.advantage]


def scaling(suite: dict[str, Any], workload: str) -> tuple[list[int], list[float], list[float]]:
    """Worker counts, minipool's medians, the best peer's medians."""
    workers, mine, peer = [], [], []
    for run in (suite["scaling"] or {}).get("runs", []):
        for item in report.judged(run["metrics"], run["workers"]):
            wanted = item.metric["workload"] == workload and not item.target["stretch"]
            if wanted and item.best_peer is not None and item.mine["median"] is not None:
                workers.append(run["workers"])
                mine.append(item.mine["median"])
                peer.append(item.best_peer["median"])
    return workers, mine, peer


def draw(suite: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(11, 8.5), layout="constrained")
    bars, maps, submits = figure.subplot_mosaic([["bars", "bars"], ["map", "submit"]]).values()
    draw_advantages(bars, advantages(suite))
    draw_scaling(maps, suite, "tiny_map", "million tasks/s (higher is better)", 1e-6)
    draw_scaling(submits, suite, "tiny_submit", "us per job (lower is better)", 1.0)
    machine = suite["machine"]
    figure.suptitle(
        f"minipool against the best peer in the same run: {machine['date'][:10]}, "
        f"{machine['cpu_count']} CPUs, {machine['python']}, {machine['start_method']}",
        fontsize=11,
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)


def draw_advantages(axes: Any, items: list[report.Judged]) -> None:
    kinds = [(item.metric["workload"], item.metric["unit"]) for item in items]
    labels = [
        f"{workload} ({unit})"
        if kinds.count((workload, unit)) == 1
        else f"{workload}: {item.mine['label'].removeprefix('minipool, ')}"
        for item, (workload, unit) in zip(items, kinds, strict=True)
    ]
    values = [item.advantage or 0.0 for item in items]
    colors = [MINIPOOL_COLOR if value >= 1 else BEHIND_COLOR for value in values]
    positions = range(len(items))
    axes.barh(positions, values, color=colors)
    axes.set_yticks(list(positions), labels)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.axvline(1.0, color="black", linewidth=0.8)
    for position, item, value in zip(positions, items, values, strict=True):
        peer = item.best_peer["label"] if item.best_peer else "-"
        axes.text(value, position, f"  {value:.2f}x vs {peer}", va="center", fontsize=8)
    axes.set_xlabel("minipool / best peer (right of 1: minipool ahead; log scale)")
    axes.set_xlim(min(values, default=1) / 1.5, max(values, default=1) * 8)


def draw_scaling(
    axes: Any, suite: dict[str, Any], workload: str, ylabel: str, factor: float
) -> None:
    workers, mine, peer = scaling(suite, workload)
    axes.plot(workers, [v * factor for v in mine], "o-", color=MINIPOOL_COLOR, label="minipool")
    axes.plot(workers, [v * factor for v in peer], "s--", color=PEER_COLOR, label="best peer")
    axes.set_title(f"{workload} by worker count", fontsize=10)
    axes.set_xlabel("workers")
    axes.set_ylabel(ylabel)
    axes.set_xticks(workers)
    axes.set_ylim(bottom=0)
    axes.legend(fontsize=8)


def main(argv: list[str]) -> int:
    suite_path = argv[0] if argv else DEFAULT_SUITE
    out = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(suite_path), "chart.png")
    with open(suite_path) as source:
        draw(json.load(source), out)
    print(f"chart written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
