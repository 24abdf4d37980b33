"""The README's code runs as written, and in seconds."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


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
    with sqlite3.connect(tmp_path / "data.db") as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT row) FROM t").fetchone() == (
            1_000_001,
            1_000_001,
        )
