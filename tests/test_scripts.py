"""Code defined in a script run as ``__main__`` works under every start method.

spawn and forkserver workers cannot import the caller's ``__main__``; minipool
sends such functions by value. These tests run real scripts in a fresh
interpreter, the way users run them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import wait_for

SCRIPT = textwrap.dedent(
    """
    import sys

    import minipool


    def cube(x):
        return x ** 3


    class Scale:
        def __init__(self, factor):
            self.factor = factor

        def __call__(self, x):
            return self.factor * x


    def init_state(base):
        return {"base": base}


    def from_state(x):
        return minipool.worker_state()["base"] + x


    class Point:
        def __init__(self, x):
            self.x = x


    class BadPoint(Exception):
        pass


    def make_point(x):
        return Point(x)


    def refuse_point(x):
        raise BadPoint(x)


    def main(method):
        offset = 100

        def shifted(x):  # a closure over a local of main()
            return x + offset

        with minipool.Pool(2, start_method=method, init=init_state, init_args=(1000,)) as pool:
            print("function", list(pool.map(cube, range(5))))
            print("lambda", pool.submit(lambda x: x * 2, 21).result(timeout=30))
            print("closure", pool.submit(shifted, 1).result(timeout=30))
            print("callable", list(pool.map(Scale(3), [1, 2])))
            print("state", pool.submit(from_state, 7).result(timeout=30))
            point = pool.submit(make_point, 5).result(timeout=30)
            print("class", type(point) is Point, point.x)
            try:
                pool.submit(refuse_point, 6).result(timeout=30)
            except BadPoint as error:
                print("exception", type(error) is BadPoint, error.args)


    if __name__ == "__main__":
        main(sys.argv[1])
    """
)

EXPECTED = [
    "function [0, 1, 8, 27, 64]",
    "lambda 42",
    "closure 101",
    "callable [3, 6]",
    "state 1007",
    "class True 5",
    "exception True (6,)",
]


def _run_script(script: Path, start_method: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` as ``__main__`` in a fresh interpreter, in its own directory."""
    return subprocess.run(
        [sys.executable, str(script), start_method],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=script.parent,
    )


def test_functions_defined_in_main_run(tmp_path: Path, start_method: str) -> None:
    """A script's own functions, lambdas, closures and callables run in workers; it exits 0."""
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT)
    done = _run_script(script, start_method)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == EXPECTED
    assert "Traceback" not in done.stderr


def test_script_that_forgets_shutdown_still_exits(tmp_path: Path, start_method: str) -> None:
    """A script that never shuts its pool down still exits cleanly, and its workers with it."""
    script = tmp_path / "no_shutdown.py"
    script.write_text(
        textwrap.dedent(
            """
            import os
            import sys
            import minipool

            def double_and_pid(x):
                return 2 * x, os.getpid()

            if __name__ == "__main__":
                pool = minipool.Pool(2, start_method=sys.argv[1])
                value, pid = pool.submit(double_and_pid, 21).result(timeout=30)
                print(value, pid)
            """
        )
    )
    done = _run_script(script, start_method)
    assert done.returncode == 0, done.stderr
    value, worker = done.stdout.split()
    assert value == "42"
    assert "Traceback" not in done.stderr
    assert wait_for(lambda: not Path(f"/proc/{worker}").exists(), timeout=10)
