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

import pytest
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
                tb = error.__cause__.tb  # the worker's, naming this file and line
                print("traceback", f'File "{__file__}", line' in tb, "raise BadPoint(x)" in tb)


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
    "traceback True True",
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


# ---- scripts as people write and run them ---------------------------------------------

NO_GUARD = textwrap.dedent(
    """
    import sys
    import minipool


    def double(x):
        return 2 * x


    method = sys.argv[1] if len(sys.argv) > 1 else None
    with minipool.Pool(2, start_method=method) as pool:
        print(list(pool.map(double, range(4))))
    """
)

# A pool outside the guard the script has: a worker importing it again gets one.
OUTSIDE_THE_GUARD = textwrap.dedent(
    """
    import sys
    import minipool

    if __name__ == "__main__":
        print("main")

    pool = minipool.Pool(1, start_method=sys.argv[1])
    try:
        pool.submit(abs, -1).result(timeout=30)
    except minipool.InitError as error:
        print("InitError", error)
    pool.shutdown()
    """
)

# Guarded, with a class whose instances travel by reference: only a worker that
# has the caller's __main__ (a forked one) can rebuild them.
WITHOUT_A_FILE = textwrap.dedent(
    """
    import minipool

    class Point:
        def __init__(self, x):
            self.x = x

    def shift(point):
        return Point(point.x + 1)

    if __name__ == "__main__":
        with minipool.Pool(2) as pool:
            moved = pool.submit(shift, Point(1)).result(timeout=30)
            print(type(moved) is Point, moved.x, list(pool.map(lambda x: x * 2, range(3))))

    """
)


def _python(*args: str, stdin: str = "", cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], input=stdin, capture_output=True, text=True, timeout=50, cwd=cwd
    )


@pytest.mark.parametrize("how", ["file", "-m"])
def test_a_script_without_a_main_guard_runs(tmp_path: Path, how: str) -> None:
    """No ``if __name__ == "__main__":``, no start method chosen, run as a file or with
    ``-m``: the pool forks (a worker that imported the script again would create a
    pool), and the script just works."""
    script = tmp_path / "no_guard.py"
    script.write_text(NO_GUARD)
    done = _python(*([str(script)] if how == "file" else ["-m", "no_guard"]), cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "[0, 2, 4, 6]\n", "")


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_script_without_a_main_guard_told_not_to_fork_gets_one_clear_error(
    tmp_path: Path, method: str
) -> None:
    """One traceback, from ``Pool()``, naming the guard and the other fix; no worker
    starts, so none blames init."""
    script = tmp_path / "no_guard.py"
    script.write_text(NO_GUARD)
    done = _python(str(script), method, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.count("Traceback") == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: ") and 'under if __name__ == "__main__":' in last
    assert f"starts its workers with {method!r}" in last and "start_method='fork'" in last
    assert "init" not in last


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_pool_outside_the_main_guard_fails_naming_the_guard(tmp_path: Path, method: str) -> None:
    """The script has a guard, but creates its pool outside it: each worker that imports
    it again says so in one line and exits; the pool fails with an InitError that names
    the guard, not init. No traceback anywhere."""
    script = tmp_path / "outside_the_guard.py"
    script.write_text(OUTSIDE_THE_GUARD)
    done = _python(str(script), method, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "created another Pool" in done.stdout and "Fix init" not in done.stdout
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines and all("put the code that creates the pool under" in line for line in lines)


@pytest.mark.parametrize("how", ["stdin", "-c", "interactive"])
def test_a_script_without_a_file_runs(tmp_path: Path, how: str) -> None:
    """``python - < script.py``, ``python -c``, an interactive session: no file a spawned
    worker could import, so the pool forks, and functions, lambdas and instances of the
    script's classes all travel."""
    args = {"stdin": ["-"], "-c": ["-c", WITHOUT_A_FILE], "interactive": ["-i", "-q"]}[how]
    stdin = "" if how == "-c" else WITHOUT_A_FILE
    done = _python(*args, stdin=stdin, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True 2 [0, 2, 4]"
    assert "Traceback" not in done.stderr
