"""The benchmarks run, and check what they must (smoke runs at tiny scale).

Each runs in a subprocess of its own, as users run it. Their figures are not
checked: timings belong in benchmarks, not tests.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
WORKLOADS = {
    "tiny_map",
    "tiny_submit",
    "startup",
    "lazy_memory",
    "cpu_bound",
    "skewed",
    "mixed",
    "big_payload",
}


@pytest.mark.timeout(150)
def _bench(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``benchmarks/script`` with ``args`` to the end; its output captured."""
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_run_all_runs_every_workload_and_writes_json_table_and_chart(tmp_path: Path) -> None:
    """The one command at a hundredth of the jobs: every workload and target, JSON, table, chart."""
    done = _bench(
        "run_all.py",
        *("--scale", "0.01", "--rounds", "1", "--only", "engine", "scaling", "logs"),
        *("--out", str(tmp_path)),
        timeout=140,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    suite = json.loads((tmp_path / "suite.json").read_text())
    (main_run,) = suite["engine"]["runs"]
    assert {metric["workload"] for metric in main_run["metrics"]} == WORKLOADS
    assert [run["workers"] for run in suite["scaling"]["runs"]] == [1, 2, 4, 8]
    assert suite["logs"]["metrics"][0]["workload"] == "logs"
    summary = (tmp_path / "summary.md").read_text()
    for workload in [*WORKLOADS, "logs"]:
        assert f"| {workload} (" in summary
    if importlib.util.find_spec("matplotlib"):
        assert (tmp_path / "chart.png").read_bytes().startswith(b"\x89PNG")


def in_git_checkout() -> bool:
    git = shutil.which("git")
    if git is None:
        return False
    found = subprocess.run([git, "rev-parse", "HEAD"], cwd=BENCHMARKS, capture_output=True)
    return found.returncode == 0


def test_bench_engine_baseline_rows_beside_minipool(tmp_path: Path) -> None:
    """--baseline HEAD: a minipool@<rev> row beside minipool's, its ratio, never the reference."""
    if not in_git_checkout():
        pytest.skip("needs git and a git checkout")
    out = tmp_path / "engine.json"
    done = _bench(
        "bench_engine.py",
        *("--only", "tiny_submit", "mixed", "--rounds", "1", "--scale", "0.01"),
        *("--baseline", "HEAD", "--json", str(out)),
        timeout=50,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    found = json.loads(out.read_text())
    baseline = found["machine"]["baseline"]
    engine = baseline["engine"]
    assert engine == f"minipool@{baseline['commit']}"
    assert not Path(baseline["copy"]).exists(), "the copy of minipool/ was left behind"
    (run,) = found["runs"]
    assert [metric["workload"] for metric in run["metrics"]] == ["tiny_submit", "mixed"]
    for metric in run["metrics"]:
        reference = next(row for row in metric["rows"] if row["label"] == metric["reference"])
        assert reference["engine"] not in ("minipool", engine)
        (pair,) = metric["baseline"]
        assert pair["now"].startswith("minipool: ")
        assert pair["base"].startswith(f"{engine}: ")
        assert isinstance(pair["ratio"], float)
    assert f"minipool now / {engine}: " in done.stdout


def test_bench_engine_baseline_unknown_revision_says_so() -> None:
    """A revision git does not know: exit status 2 and a message that names it."""
    if shutil.which("git") is None:
        pytest.skip("needs git")
    done = _bench("bench_engine.py", "--baseline", "no-such-revision", timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no commit 'no-such-revision'" in done.stderr


def test_bench_crash_delivers_199_and_minipool_passes(tmp_path: Path) -> None:
    """Job #50 kills its worker: minipool's row passes its target; every engine has a row."""
    out = tmp_path / "crash.json"
    done = _bench("bench_crash.py", "--wait", "3", "--json", str(out), timeout=55)
    assert done.returncode == 0, done.stdout + done.stderr
    crash = json.loads(out.read_text())
    assert crash["target"]["pass"], crash["target"]
    engines = {row["engine"] for row in crash["engines"]}
    assert {"minipool", "multiprocessing.Pool", "ProcessPoolExecutor"} <= engines


def test_bench_master_measures_every_engine_and_projects_its_saturation(tmp_path: Path) -> None:
    """One small round at 1 and 4 workers: a table per way in, each with every engine and
    minipool's master thread alone; the projection, as a table and as a judged workload; and
    run_all's summary of its targets."""
    out = tmp_path / "master.json"
    args = ("--workers", "1", "4", "--rounds", "1", "--scale", "0.04", "--json", str(out))
    done = _bench("bench_master.py", *args, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    master = json.loads(out.read_text())
    assert [run["workers"] for run in master["runs"]] == [1, 4]
    for run in master["runs"]:
        workloads = {metric["workload"]: metric for metric in run["metrics"]}
        assert set(workloads) == {
            "master_map_1",
            "master_map_10",
            "master_submit",
            "master_projection",
        }
        for metric in workloads.values():
            assert {row["engine"] for row in metric["rows"]} == {"mp", "ppe", "minipool"}
            assert all(row["median"] > 0 for row in metric["rows"]), metric["rows"]
    assert {row["engine"] for row in master["projection"]} >= {"minipool.Pool"}
    sys.path.insert(0, str(BENCHMARKS))
    import run_all

    suite = {"master": master, **dict.fromkeys(("engine", "scaling", "logs", "crash"))}
    judged = {(row[0], row[1].split(" ")[0]) for row in run_all.summary(suite)}
    judged_workloads = ("master_map_1", "master_map_10", "master_projection")
    assert judged == {(w, m) for w in ("1", "4") for m in judged_workloads}


def test_bench_logs_runs_and_counts_every_record(tmp_path: Path) -> None:
    """One small round of every engine: exit 0 (no sample missed a record), a table, JSON."""
    out = tmp_path / "logs.json"
    done = _bench("bench_logs.py", "--jobs", "500", "--rounds", "1", "--json", str(out), timeout=50)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "minipool, logging records" in done.stdout
    assert "minipool, structlog events" in done.stdout
    assert "ERROR" not in done.stdout
    assert out.exists()


def test_bench_runner_runs_and_resume_runs_nothing(tmp_path: Path) -> None:
    """One small round: the runner, the loop and --resume all produce every line; exit 0."""
    out = tmp_path / "runner.json"
    done = _bench(
        "bench_runner.py", "--records", "2000", "--rounds", "1", "--json", str(out), timeout=50
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "minipool run --resume" in done.stdout
    assert "ERROR" not in done.stdout
    assert out.exists()


@pytest.mark.timeout(40)
def test_bench_dask_runs_both_engines_on_one_cluster(tmp_path: Path) -> None:
    """A small round on one LocalCluster: both workloads, a Dask and a minipool row, a ratio."""
    if importlib.util.find_spec("distributed") is None:  # not imported here: see conftest
        pytest.skip("needs the cluster extra")
    out = tmp_path / "dask.json"
    done = _bench(
        "bench_dask.py", "--scale", "0.01", "--rounds", "1", "--json", str(out), timeout=35
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ERROR" not in done.stdout
    metrics = {metric["workload"]: metric for metric in json.loads(out.read_text())["metrics"]}
    assert set(metrics) == {"tiny_submit", "cpu_bound"}
    for metric in metrics.values():
        rows = {row["engine"]: row for row in metric["rows"]}
        assert set(rows) == {"dask", "minipool"}
        assert isinstance(rows["minipool"]["ratio"], float)
        assert metric["targets"][0]["pass"] is not None


def test_bench_import_times_every_module_in_fresh_interpreters(tmp_path: Path) -> None:
    """Two rounds: a row for minipool and for the stdlib's module in both tables, JSON."""
    out = tmp_path / "import.json"
    done = _bench("bench_import.py", "--rounds", "2", "--json", str(out), timeout=50)
    assert "ERROR" not in done.stdout, done.stdout + done.stderr
    metrics = {metric["workload"]: metric for metric in json.loads(out.read_text())["metrics"]}
    labels = {name: {row["label"] for row in metrics[name]["rows"]} for name in metrics}
    assert {"minipool", "concurrent.futures.process"} <= labels["import"]
    assert {"minipool.Pool", "ProcessPoolExecutor"} <= labels["import_pool"]


@pytest.mark.timeout(150)
def test_the_large_data_benchmarks_run_every_workload(tmp_path: Path) -> None:
    """bench_large.py and bench_shared.py at a hundredth of their data: every table, no
    sample failed (each checks its results), JSON written."""
    large = _bench(
        "bench_large.py",
        *("--scale", "0.01", "--rounds", "1", "--json", str(tmp_path / "large.json")),
        timeout=70,
    )
    assert large.returncode == 0, large.stdout[-3000:] + large.stderr
    workloads = [
        m["workload"] for m in json.loads((tmp_path / "large.json").read_text())["metrics"]
    ]
    assert workloads == ["large_results", "large_arguments", "crossover"]
    shared = _bench(
        "bench_shared.py",
        *("--scale", "0.01", "--rounds", "1", "--json", str(tmp_path / "shared.json")),
        timeout=70,
    )
    assert shared.returncode == 0, shared.stdout[-3000:] + shared.stderr
    metrics = json.loads((tmp_path / "shared.json").read_text())["metrics"]
    assert [metric["workload"] for metric in metrics] == [
        "shared_seconds",
        "shared_setup",
        "shared_memory",
    ]
