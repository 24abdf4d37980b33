"""``python -m minipool``: the command line."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from typing import Any

from .. import __version__
from .._logging import check_log_level
from .options import EXIT_INIT_FAILED, EXIT_OK, EXIT_USAGE, Halt, InitFailed, RunOptions
from .records import FORMATS
from .run import run
from .targets import UsageError

SECURITY = (
    "The runner imports and runs the code it is pointed at, as `python -m` does: run "
    "only code you trust. It reads records as JSON, CSV or text, never pickles."
)
RUN_EXAMPLE = """\
example:
  python -m minipool run mymodule:clean --input rows.jsonl --output out.jsonl
  python -m minipool run mymodule:clean --input rows.jsonl --output out.jsonl --resume

Each record becomes one output line, {"index": i, "result": ...} or
{"index": i, "error": {"type": ..., "message": ..., "traceback": ...}}.
Exit status: 0 every record succeeded, 1 some failed, 2 usage error,
3 --init failed (no record ran), 4 halted by --halt, 130 interrupted (run
again with --resume to finish), 141 the reader of standard output left.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m minipool",
        description=(
            "minipool: a process pool for Python batch jobs. As a library: "
            "`with minipool.Pool(init=...) as pool: pool.map(fn, items)`. As a command: "
            "`python -m minipool run MODULE:FUNC --input FILE` maps a function over the "
            f"records of a file. {SECURITY}"
        ),
    )
    parser.add_argument("--version", action="version", version=f"minipool {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(commands)
    return parser


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run_parser = commands.add_parser(
        "run",
        help="map a function over the records of a file, one JSON line out per record",
        description=(
            "Map TARGET over the records of the input, in worker processes, and write one "
            f"JSON line per record as results arrive. {SECURITY}"
        ),
        epilog=RUN_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = run_parser.add_argument
    add("target", metavar="TARGET", help="package.module:function or path/to/file.py:function")
    add("--input", metavar="PATH", help="the records; - or absent: standard input")
    add(
        "--format",
        choices=FORMATS,
        help="jsonl: a JSON value per line; csv: a dict per row; lines: a str per line "
        "(default: from the extension, .jsonl/.ndjson/.json or .csv; lines otherwise)",
    )
    add("--output", metavar="PATH", help="where the JSON lines go (default: standard output)")
    add("--workers", type=_positive_int, metavar="N", help="worker processes (default: CPUs)")
    add("--init", metavar="TARGET", help="run once in each worker; a generator gets teardown")
    add(
        "--init-args",
        metavar="JSON_ARRAY",
        help="the arguments of --init, as a JSON array: '[\"data.sqlite\", 4]'",
    )
    add("--timeout", type=_positive_float, metavar="SECONDS", help="per record")
    add("--retries", type=_whole_number, default=0, metavar="N", help="per failed record")
    resume = run_parser.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume", action="store_true", help="skip records that have a line in --output"
    )
    resume.add_argument(
        "--resume-failed",
        action="store_true",
        help="skip records whose newest line in --output is a result; run the rest, then "
        "keep only each record's newest line",
    )
    add(
        "--halt",
        type=_halt,
        metavar="N|P%",
        help="stop dispatching once N records failed (or P%% of those finished); the "
        "records in hand finish, their lines are kept; exit 4 (GNU parallel: --halt "
        "soon,fail=N)",
    )
    add(
        "--dry-run",
        action="store_true",
        help="check the target, --init and every record, count what would run; run "
        "nothing, write nothing",
    )
    add(
        "--joblog",
        metavar="PATH",
        help="a tab-separated line per record: index, start, runtime, attempts, worker, "
        "pid, outcome (GNU parallel: --joblog)",
    )
    order = run_parser.add_mutually_exclusive_group()
    order.add_argument(
        "--ordered", dest="ordered", action="store_true", default=True, help="(default)"
    )
    order.add_argument(
        "--unordered", dest="ordered", action="store_false", help="lines as records finish"
    )
    add("--log-file", metavar="PATH", help="worker and runner events (default: stderr)")
    add("--log-format", choices=("json", "console"), default="console")
    add("--log-level", default="info", metavar="LEVEL", help="lowest level shipped (info)")
    add(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr (default: when stderr is a terminal)",
    )
    add("--start-method", choices=multiprocessing.get_all_start_methods())
    add(
        "--cluster",
        metavar="ADDRESS",
        help="run on a Dask cluster: its scheduler's address (tcp://host:8786), or 'local' "
        "for one on this machine; TARGET must be importable on its workers",
    )


def _init_args(text: str | None, init: str | None) -> tuple[Any, ...]:
    if text is None:
        return ()
    if init is None:
        raise UsageError("--init-args needs --init: the function they are passed to")
    try:
        values = json.loads(text)
    except ValueError as error:
        raise UsageError(f"--init-args is not JSON ({error}): {text!r}") from None
    if not isinstance(values, list):
        raise UsageError(
            f"--init-args must be a JSON array of the arguments, like '[\"data.sqlite\", 4]'; "
            f"got {text!r}"
        )
    return tuple(values)


def _halt(text: str) -> Halt:
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if 0 < percent <= 100:
                return Halt(fraction=percent / 100)
        elif int(text) >= 1:
            return Halt(failures=int(text))
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        f"must be a number of failed records (5) or a percentage of those finished "
        f"(10%), got {text!r}"
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _whole_number(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    try:
        return run(_run_options(args))
    except UsageError as error:
        print(f"minipool: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except InitFailed as error:
        print(f"minipool: error: {error}", file=sys.stderr)
        return EXIT_INIT_FAILED


def _run_options(args: argparse.Namespace) -> RunOptions:
    if args.cluster not in (None, "local"):
        for option, value in (("--workers", args.workers), ("--start-method", args.start_method)):
            if value is not None:
                raise UsageError(
                    f"{option} cannot be used with --cluster {args.cluster}: the cluster "
                    "decides how its workers run (--cluster local takes --workers)"
                )
    elif args.cluster == "local" and args.start_method is not None:
        raise UsageError("--start-method cannot be used with --cluster: Dask starts its workers")
    try:
        check_log_level(args.log_level)
    except ValueError as error:
        raise UsageError(f"--log-level: {error}") from None
    return RunOptions(
        target=args.target,
        init_args=_init_args(args.init_args, args.init),
        input=args.input,
        format=args.format,
        output=args.output,
        workers=args.workers,
        init=args.init,
        timeout=args.timeout,
        retries=args.retries,
        resume=args.resume,
        resume_failed=args.resume_failed,
        ordered=args.ordered,
        log_file=args.log_file,
        log_format=args.log_format,
        log_level=args.log_level,
        progress=args.progress,
        start_method=args.start_method,
        cluster=args.cluster,
        halt=args.halt,
        dry_run=args.dry_run,
        joblog=args.joblog,
    )
