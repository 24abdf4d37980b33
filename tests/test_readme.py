"""The README's code and commands run as written, in seconds, and leave nothing behind."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from helpers import run_leaving_nothing

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"


def _python_block_after(heading: str) -> str:
    text = README.read_text()
    match = re.search(r"```python\n(.*?)```", text[text.index(heading) :], re.DOTALL)
    assert match is not None, f"no python block after {heading!r}"
    return match[1]


def test_the_tour_loads_a_million_rows_in_seconds(tmp_path: Path) -> None:
    """ "A short tour" as written: its million SQLite rows go in batches, one commit each
    (a commit per row took about 28 minutes), well inside the timeout."""
    (tmp_path / "tour.py").write_text(_python_block_after("## A short tour"))
    done = subprocess.run(
        [sys.executable, "tour.py"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1000000"]
    # closing(): a connection's own with block commits but does not close it (3.13 warns).
    with contextlib.closing(sqlite3.connect(tmp_path / "data.db")) as db:
        counts = db.execute("SELECT COUNT(*), COUNT(DISTINCT row) FROM t").fetchone()
    assert counts == (1_000_001, 1_000_001)


def test_the_first_command_leaves_nothing_behind(tmp_path: Path) -> None:
    """examples/sqlite_etl.py, the README's first command: it loads and checks its rows,
    its temporary database is gone at the end, and its progress is whole lines (stderr
    is no terminal here), not a bar's frames."""
    command = [sys.executable, str(EXAMPLES / "sqlite_etl.py"), "--batches", "20", "--rows", "50"]
    done = run_leaving_nothing(tmp_path, command, timeout=60)
    assert "loaded 1000 rows (expected 1000)" in done.stdout
    assert "\r" not in done.stderr
    assert done.stderr.startswith("minipool: 20 jobs done, 0 failed"), done.stderr
