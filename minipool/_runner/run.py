"""``python -m minipool run``: the files of a run checked and opened, then the run itself.

The order matters: every check that can refuse the run (paths, targets, the
output to resume) comes before the output is opened, and so before it is
truncated; standard output is set aside before the targets are imported.
The records are mapped over a pool in ``pool_run``.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import sys
from collections.abc import Iterator
from typing import TextIO

from .dry_run import dry_run
from .joblog import JobLog
from .logs import LogSink
from .options import EXIT_INTERRUPTED, RunOptions
from .output import LineWriter, OutputError, OutputScan, keep_newest_lines, scan_output
from .pool_run import PoolRun
from .records import InputError, Record, input_format, read_records
from .targets import UsageError, load_target


def run(options: RunOptions) -> int:
    _check_paths(options)
    with contextlib.ExitStack() as stack:
        # Before the targets are imported: a module that prints as it loads
        # must not put its text among the output lines.
        stdout = None if options.output else stack.enter_context(_stdout_for_lines_only())
        fn = load_target(options.target, "TARGET")
        init = load_target(options.init, "--init") if options.init else None
        earlier = _earlier_output(options)
        stream = stack.enter_context(_open_input(options.input))
        fmt = input_format(options.input, options.format)
        if options.dry_run:
            return dry_run(options, _unfinished(read_records(stream, fmt), earlier), earlier)
        fd = stdout if stdout is not None else stack.enter_context(_output_file(options, earlier))
        joblog = None
        if options.joblog is not None:
            joblog_fd = stack.enter_context(_opened(options.joblog, "--joblog", earlier))
            joblog = JobLog(joblog_fd, new=os.fstat(joblog_fd).st_size == 0)
        sink = stack.enter_context(LogSink.open(options.log_file, options.log_format))
        this_run = PoolRun(options, LineWriter(fd), sink, earlier, joblog)
        try:
            status = this_run.execute(fn, init, _unfinished(read_records(stream, fmt), earlier))
        except InputError as error:
            raise UsageError(
                f"--input {options.input or '-'}: {error}; the records before it ran, "
                "and their lines are written"
            ) from None
    if status != EXIT_INTERRUPTED and earlier is not None:
        _replace_older_lines(options, earlier, this_run.written)
    return status


def _replace_older_lines(options: RunOptions, earlier: OutputScan, written: int) -> None:
    """A resumed run ended: leave one line per record, its newest, in the output."""
    assert options.output is not None
    if not (earlier.repeated or (options.resume_failed and written)):
        return  # no record has two lines
    try:
        keep_newest_lines(options.output)
    except OSError as error:
        print(
            f"minipool: warning: could not rewrite {options.output} with one line per "
            f"record ({error}); where a record has two lines, the last one is its newest",
            file=sys.stderr,
        )


def _check_paths(options: RunOptions) -> None:
    """Refuse a run that would write over its own input or over another of its files."""
    named = [
        (flag, path)
        for flag, path in (
            ("--input", options.input),
            ("--output", options.output),
            ("--log-file", options.log_file),
            ("--joblog", options.joblog),
        )
        if path not in (None, "-")
    ]
    for flag, path in named:
        if flag != "--input" and os.path.isdir(path):
            raise UsageError(f"{flag} {path} is a directory; name a file")
    existing = [(flag, path) for flag, path in named if os.path.exists(path)]
    for (first_flag, first), (flag, path) in itertools.combinations(existing, 2):
        if os.path.samefile(first, path):
            raise UsageError(
                f"{flag} {path} is the same file as {first_flag} {first}: writing it would "
                f"destroy what {first_flag} holds; name another file"
            )


def _earlier_output(options: RunOptions) -> OutputScan | None:
    """What the output to resume holds; None when not resuming (or nothing is there yet)."""
    if not (options.resume or options.resume_failed):
        return None
    if options.output is None:
        raise UsageError("--resume and --resume-failed need --output: the file to resume")
    try:
        # A dry run writes nothing: not even the cut of a partial last line.
        return scan_output(options.output, options.resume_failed, cut=not options.dry_run)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise UsageError(f"cannot read --output {options.output}: {error.strerror}") from None
    except OutputError as error:
        raise UsageError(
            f"--output {options.output}: {error}. Resume only into the output of an earlier "
            "run, or remove that line"
        ) from None


def _unfinished(records: Iterator[Record], earlier: OutputScan | None) -> Iterator[Record]:
    if earlier is None or not len(earlier.done):
        return records
    done = earlier.done
    return (record for record in records if record[0] not in done)


@contextlib.contextmanager
def _open_input(path: str | None) -> Iterator[TextIO]:
    # UTF-8 whatever the locale, a leading byte-order mark dropped (Excel
    # writes one: it would start the first key or record). A byte that is not
    # UTF-8 does not end the run: it reaches the function as a lone surrogate
    # ("surrogateescape"), and an output line escapes it. newline="": the csv
    # module handles line ends itself; the other formats cut "\n".
    if path is None or path == "-":
        if isinstance(sys.stdin, io.TextIOWrapper):
            sys.stdin.reconfigure(encoding="utf-8-sig", errors="surrogateescape", newline="")
        yield sys.stdin
        return
    try:
        # Closed below.
        stream = open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")  # noqa: SIM115
    except OSError as error:
        raise UsageError(f"cannot read --input {path}: {error.strerror}") from None
    with stream:
        yield stream


def _output_file(
    options: RunOptions, earlier: OutputScan | None
) -> contextlib.AbstractContextManager[int]:
    assert options.output is not None
    return _opened(options.output, "--output", earlier)


@contextlib.contextmanager
def _opened(path: str, flag: str, earlier: OutputScan | None) -> Iterator[int]:
    """A file the run writes, appended to when it resumes, else started anew."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if earlier is None else os.O_APPEND)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as error:
        raise UsageError(f"cannot write {flag} {path}: {error.strerror}") from None
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _stdout_for_lines_only() -> Iterator[int]:
    """A descriptor for standard output, while fd 1 points at stderr.

    Workers inherit fd 1: a job's ``print`` would land among the JSON lines.
    It goes to stderr instead, and so does anything this process prints.
    """
    sys.stdout.flush()
    lines = os.dup(1)
    os.dup2(2, 1)
    try:
        yield lines
    finally:
        sys.stdout.flush()
        os.dup2(lines, 1)
        os.close(lines)
