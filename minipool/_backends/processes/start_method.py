"""Which start method a pool's workers get: the one asked for, checked, or one that can.

The default is forkserver on Linux (spawn elsewhere). A spawned worker, and
the forkserver, import the caller's ``__main__`` again, and some callers
cannot be imported again as they are, which the stdlib's pools on fork (their
Linux default before Python 3.14) never noticed. So a pool whose start
method was not chosen forks instead when

- ``__main__`` is no file a process can import (``python - < script.py``,
  ``python -c``, an interactive session, a notebook);
- ``__main__`` creates the pool as it runs, and its source has no
  ``if __name__ == "__main__":`` guard: imported again, it would create
  pools in every worker (multiprocessing's "safe importing of main module");
- ``init_args`` hold a lock made by the fork context (see ``handover``).

A pool told to spawn or to use the forkserver in those cases gets an error
at ``Pool()`` that names the cause and the fix, instead of tracebacks from
every worker it starts.
"""

from __future__ import annotations

import os
import re
import sys
from multiprocessing import current_process, get_all_start_methods
from types import FrameType

from .handover import InitCall, fork_only_part

# Python 3.14 made forkserver the default on Linux for the reason we do:
# forking a process that runs threads (the master thread, the caller's own)
# can copy a lock some thread holds and deadlock the child. macOS cannot fork
# safely at all, so it gets spawn, as multiprocessing does there.
DEFAULT_START_METHOD = "forkserver" if sys.platform == "linux" else "spawn"
_MAIN_GUARD = re.compile(r"""__name__\s*==\s*['"]__main__['"]|['"]__main__['"]\s*==\s*__name__""")


def choose_start_method(requested: str | None, init: InitCall | None) -> str:
    """The start method for a pool's workers (see the module's docstring)."""
    _refuse_while_bootstrapping()
    available = get_all_start_methods()
    if requested is not None and requested not in available:
        raise ValueError(
            f"start_method must be one of {', '.join(map(repr, available))} on this "
            f"platform, got {requested!r}"
        )
    if requested == "fork":
        return requested  # nothing is imported again, nothing pickled: all is inherited
    method = requested or (DEFAULT_START_METHOD if DEFAULT_START_METHOD in available else "fork")
    problem = _main_problem() or _init_problem(init, method)
    if requested is None and "fork" in available and (problem or _main_has_no_file()):
        return "fork"
    if problem is not None:
        error, cause, fix = problem
        raise error(
            f"{cause}, but this pool starts its workers with {method!r}. {fix}, or pass "
            "start_method='fork'."
        )
    return method


# A worker that exits with it was importing the caller's __main__ again, which
# created a pool: the master says so instead of blaming init (see handle).
EXIT_MAIN_CREATES_POOL = 76


def _refuse_while_bootstrapping() -> None:
    """A process that multiprocessing is still starting (importing the caller's
    ``__main__`` again) creates a pool: the caller's script has no main guard where it
    needs one. Say so once, and exit with a status its own pool knows."""
    if getattr(current_process(), "_inheriting", False):
        print(
            "minipool: a worker process, importing the caller's __main__ again, "
            "created a Pool: put the code that creates the pool under "
            'if __name__ == "__main__":',
            file=sys.stderr,
            flush=True,
        )
        # Not SystemExit: a child of the forkserver turns that into status 1.
        os._exit(EXIT_MAIN_CREATES_POOL)


def _main_problem() -> tuple[type[Exception], str, str] | None:
    """Why a process started afresh cannot import the caller's ``__main__`` as it is."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None:
        return None  # see _main_has_no_file
    if main.__spec__ is None and not os.path.isfile(path):  # python -m: imported by name
        return (
            RuntimeError,
            f"the caller's __main__ ({path}) is no file that a worker can import again",
            "Run the script from a file",
        )
    if _runs_at_top_level(main.__dict__) and not _has_main_guard(path):
        return (
            RuntimeError,
            f"{path} creates a Pool as it runs, without an "
            f'if __name__ == "__main__": guard, so each worker, importing it again, '
            f"would create one too",
            'Put the code that creates the pool under if __name__ == "__main__":',
        )
    return None


def _main_has_no_file() -> bool:
    """``python -c``, an interactive session: a spawned worker gets no ``__main__``. The
    caller's functions still reach it (by value), instances of its classes do not."""
    main = sys.modules.get("__main__")
    return main is not None and main.__spec__ is None and getattr(main, "__file__", None) is None


def _init_problem(init: InitCall | None, method: str) -> tuple[type[Exception], str, str] | None:
    fork_only = None if init is None else fork_only_part(init)
    if fork_only is None:
        return None
    return (
        TypeError,
        f"{fork_only} holds a lock made by multiprocessing's 'fork' context (as "
        f"multiprocessing.Queue(), Lock(), Value() and the rest make them by default on "
        f"this Python), which only forked processes can share",
        f"Make it with multiprocessing.get_context({method!r}), the context the pool uses",
    )


def _runs_at_top_level(main_globals: dict[str, object]) -> bool:
    """Whether ``__main__``'s own code, not a function it defines, is running (below us)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_globals is main_globals and frame.f_code.co_name == "<module>":
            return True
        frame = frame.f_back
    return False


def _has_main_guard(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as source:
            return _MAIN_GUARD.search(source.read()) is not None
    except OSError:
        return True  # cannot tell: leave it to the import
