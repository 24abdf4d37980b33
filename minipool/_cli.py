"""``python -m minipool``: the command line."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m minipool",
        description=(
            "minipool: a process pool for Python batch jobs. As a library: "
            "`with minipool.Pool(init=...) as pool: pool.map(fn, items)`. "
            "The `run` command (a batch runner with resume, retries and timeouts) is coming."
        ),
    )
    parser.add_argument("--version", action="version", version=f"minipool {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = sys.argv[1:] if argv is None else argv
    if not args:
        parser.print_help()
        return 0
    parser.parse_args(args)
    return 0
