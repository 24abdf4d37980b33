"""``python -m minipool run``: a function mapped over the records of an input, JSON lines out.

    read_records (caller) ──► pool.map(run_record, ordered or not, positions) ──► workers
      skips what --resume finds done                     run_record: decode, fn(value),
                                                         encode the output line
    LineWriter ◄── one write per chunk of outcomes ◄── a line, or the job's exception

The caller only moves text: JSON is decoded and encoded in the workers. A
job's exception comes back as an exception (so that ``--retries`` applies
to it) and becomes its error line here. Ctrl-C or SIGTERM sets a flag: the
input stops, the pool is stopped, the results already finished are written,
and the run exits 130; a second signal kills the workers at once.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError
from dataclasses import dataclass
from types import FrameType
from typing import Any, TextIO

from .._errors import INIT_ADVICE, InitError, PoolError, RemoteTraceback, WorkerCrashed
from .._exits import HINT_AFTER_SECONDS
from .._map import map_jobs
from .._map_results import MapIterator
from .._pool import Pool
from .._progress import Progress, progress_bar
from .logs import LogSink
from .output import (
    LineWriter,
    OutputError,
    OutputScan,
    error_line,
    is_error_line,
    keep_newest_lines,
    result_line,
    scan_output,
)
from .records import (
    JSON_TEXT,
    MALFORMED,
    InputError,
    Record,
    input_format,
    read_records,
    records_in,
)
from .targets import UsageError, load_target

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_USAGE = 2
EXIT_INIT_FAILED = 3
EXIT_INTERRUPTED = 130
EXIT_OUTPUT_CLOSED = 141  # as a shell reports a process that SIGPIPE ended


class InitFailed(Exception):
    """``--init`` failed in a worker: no record can run; exit 3 with this one-line message."""


@dataclass(frozen=True)
class RunOptions:
    target: str
    input: str | None
    format: str | None
    output: str | None
    workers: int | None
    init: str | None
    init_args: tuple[Any, ...]
    timeout: float | None
    retries: int
    resume: bool
    resume_failed: bool
    ordered: bool
    log_file: str | None
    log_format: str
    log_level: str
    progress: bool | None
    start_method: str | None
    cluster: str | None = None


# ---- in the worker --------------------------------------------------------------------


def run_record(fn: Callable[[Any], Any], record: Record) -> str:
    """A job: the record's output line. The function's own exception propagates."""
    index, line, kind, payload = record
    if kind == MALFORMED:
        return error_line(index, "MalformedRecord", f"line {line}: {payload}", "")
    if kind == JSON_TEXT:
        try:
            payload = json.loads(payload)
        except ValueError as error:
            return error_line(index, "MalformedRecord", f"line {line}: not JSON: {error}", "")
    result = fn(payload)
    try:
        return result_line(index, result)
    except (TypeError, ValueError) as error:
        message = (
            f"the result of record {index} (a {type(result).__qualname__}) cannot be written "
            f"as JSON: {error}. Return JSON values: dicts, lists, strings, numbers, booleans."
        )
        return error_line(index, "UnserializableResult", message, "")


# ---- the run --------------------------------------------------------------------------


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
        fd = stdout if stdout is not None else stack.enter_context(_output_file(options, earlier))
        fmt = input_format(options.input, options.format)
        sink = stack.enter_context(LogSink.open(options.log_file, options.log_format))
        this_run = _Run(options, LineWriter(fd), sink, earlier)
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
        return scan_output(options.output, rerun_failed=options.resume_failed)
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


@contextlib.contextmanager
def _output_file(options: RunOptions, earlier: OutputScan | None) -> Iterator[int]:
    assert options.output is not None
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if earlier is None else os.O_APPEND)
    try:
        fd = os.open(options.output, flags, 0o644)
    except OSError as error:
        raise UsageError(f"cannot write --output {options.output}: {error.strerror}") from None
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


class _Run:
    """One run: the pool, the outcomes written as they come, the counts, the interrupt."""

    def __init__(
        self, options: RunOptions, writer: LineWriter, sink: LogSink, earlier: OutputScan | None
    ):
        self.options = options
        self.writer = writer
        self.sink = sink
        self.skipped = 0 if earlier is None else len(earlier.done)
        # Error lines of earlier runs that --resume keeps (--resume-failed runs them again).
        self.failed_before = earlier.errors if earlier and not options.resume_failed else 0
        self.written = self.failed = 0
        self.signals = 0  # SIGINT and SIGTERM received
        self.interrupted = False  # the first came: stop
        self.abandoned = False  # the second came: kill the records in progress
        # For the thread that acts on them (see _act_on_signals); all set at the end.
        self.first_signal, self.second_signal, self.ended = (threading.Event() for _ in "abc")
        self.indices: dict[int, int] = {}  # map position -> record index, while in flight

    def execute(self, fn: Callable[..., Any], init: Callable[..., Any] | None, records: Any) -> int:
        bar = self._progress_bar()
        previous = self._catch_signals()
        pool = None
        try:
            pool = self._start_pool(init)
            self._act_on_signals(pool)
            self.sink.runner_event("run started", workers=pool.workers, skipped=self.skipped)
            self._write_all(self._outcomes(pool, fn, records), bar)
            pool.shutdown()
        except InitError as error:
            if pool is not None:
                pool.shutdown()
            raise _init_failed(error, self.options.init) from None
        except BrokenPipeError:  # the reader of stdout left (``| head``): the rest is unwanted
            _end_now(pool)
            return EXIT_OUTPUT_CLOSED
        except KeyboardInterrupt:  # a third signal: stuck (reading a slow stdin, say)
            _end_now(pool)
            self.interrupted = True
        finally:
            _restore_signals(previous)
            for event in (self.ended, self.first_signal, self.second_signal):
                event.set()  # lets the thread acting on signals end
            if bar is not None:
                bar.close()
        return self._finish()

    def _outcomes(self, pool: Pool, fn: Callable[..., Any], records: Any) -> MapIterator:
        """Each record's outcome, by its position among those fed, as the chunks come in."""
        outcomes = map_jobs(
            pool,
            pool._backend,
            functools.partial(run_record, fn),
            (self._feed(records),),
            timeout=None,
            chunksize=None,
            ordered=self.options.ordered,
            return_exceptions=True,
            progress=False,
            task_timeout=None,
            positions=True,
        )
        assert isinstance(outcomes, MapIterator)
        return outcomes

    def _start_pool(self, init: Callable[..., Any] | None) -> Pool:
        try:
            return Pool(
                self.options.workers,
                init=init,
                init_args=self.options.init_args,
                start_method=self.options.start_method,
                task_timeout=self.options.timeout,
                retries=self.options.retries,
                log_sink=self.sink,
                log_level=self.options.log_level,
                cluster=self.options.cluster,
            )
        except (OSError, ImportError) as error:  # --cluster: not there
            if self.options.cluster is None:
                raise
            raise UsageError(f"--cluster {self.options.cluster}: {error}") from None

    def _act_on_signals(self, pool: Pool) -> None:
        """First signal: stop the pool; second: kill the records in progress.

        From a thread, not the signal handler: ``stop()`` takes the master's
        lock, which the main thread may hold when a signal lands. The main
        thread goes on writing whatever finishes; killed records get no line.
        """

        def act() -> None:
            self.first_signal.wait()
            if self.ended.is_set():
                return
            pool.stop()  # the rest is cancelled; the records in hand finish
            if not self.second_signal.wait(HINT_AFTER_SECONDS):  # (also set at the end)
                print(
                    "minipool: stopping; the records in progress finish first "
                    "(Ctrl-C again to abandon them)",
                    file=sys.stderr,
                    flush=True,
                )
                self.second_signal.wait()
            if not self.ended.is_set():
                pool._backend.kill_workers()

        threading.Thread(target=act, name="minipool-runner-signals", daemon=True).start()

    def _feed(self, records: Iterable[Record]) -> Iterator[Record]:
        for position, record in enumerate(records):
            if self.interrupted:
                return  # the input ends here: nothing more is dispatched
            self.indices[position] = record[0]
            yield record

    def _write_all(self, outcomes: MapIterator, bar: Progress | None) -> None:
        """Each chunk's lines in one write, as the chunk comes in."""
        try:
            for chunk in outcomes.chunks:
                failed_before = self.failed
                lines = [line for line in map(self._line, chunk) if line is not None]
                self.writer.write(lines)
                self.sink.flush()  # the events of these records, with their lines
                self.written += len(lines)
                if bar is not None:
                    bar.update(len(lines), self.failed - failed_before)
        except CancelledError:
            pass  # the input left unread after stop(): --resume reads it

    def _line(self, outcome: tuple[int, Any]) -> str | None:
        position, value = outcome
        index = self.indices.pop(position)
        if isinstance(value, str):
            self.failed += is_error_line(value)  # a record the worker could not read or write
            return value
        if isinstance(value, InitError):
            raise value  # the pool broke: no record ran, none gets a line
        if isinstance(value, CancelledError) or (
            self.abandoned and isinstance(value, WorkerCrashed)
        ):
            return None  # never ran, or killed by a second Ctrl-C: --resume runs it
        self.failed += 1
        return _exception_line(index, value)

    def _progress_bar(self) -> Progress | None:
        progress = self.options.progress
        if progress is None:
            progress = sys.stderr.isatty()
        if not progress:
            return None
        fmt = input_format(self.options.input, self.options.format)
        bar = progress_bar(records_in(self.options.input or "-", fmt), unit="record")
        bar.update(self.skipped, self.failed_before)
        self.sink.show_progress(bar)
        return bar

    def _catch_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for number in (signal.SIGINT, signal.SIGTERM):
            previous[number] = signal.signal(number, self._on_signal)
        return previous

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals == 1:
            self.interrupted = True
            self.first_signal.set()
        elif self.signals == 2:
            self.abandoned = True
            self.second_signal.set()
        else:
            raise KeyboardInterrupt

    def _finish(self) -> int:
        output = self.options.output or "the output"
        self.sink.runner_event(
            "run finished",
            written=self.written,
            failed=self.failed,
            skipped=self.skipped,
            interrupted=self.interrupted,
        )
        if self.interrupted:
            print(
                f"minipool: interrupted; {self.written} records written to {output}. Run the "
                "same command with --resume to finish the rest.",
                file=sys.stderr,
            )
            return EXIT_INTERRUPTED
        failed = self.failed + self.failed_before
        if failed:
            total = self.written + self.skipped
            earlier = f", {self.failed_before} in earlier runs" if self.failed_before else ""
            print(
                f"minipool: {failed} of {total} records failed{earlier}; their error lines "
                f"are in {output} (--resume-failed runs them again).",
                file=sys.stderr,
            )
            return EXIT_FAILURES
        return EXIT_OK


def _end_now(pool: Pool | None) -> None:
    """Kill the records in progress and close the pool: nobody waits for them."""
    if pool is not None:
        pool._backend.kill_workers()
        pool.shutdown(wait=True)


def _restore_signals(previous: dict[int, Any]) -> None:
    for number, handler in previous.items():
        signal.signal(number, handler)


def _init_failed(error: InitError, init: str | None) -> InitFailed:
    """One line for a person: which init, how it failed, where in their code."""
    text = str(error).removesuffix(INIT_ADVICE).rstrip(" .;")
    where = _last_frame(error.__cause__)
    return InitFailed(
        f"--init {init}: {text.splitlines()[0] if text else type(error).__name__}"
        f"{where}; no record ran. Fix it, then run the same command again."
    )


_FRAME_LINE = re.compile(r'^  File "(.*)", line (\d+), in (.*)$', re.MULTILINE)


def _last_frame(cause: BaseException | None) -> str:
    """`` (file.py, line 12, in setup)``: where the worker's traceback of ``cause`` ends."""
    trace = cause.__cause__ if cause is not None else None
    if not isinstance(trace, RemoteTraceback):
        return ""
    frames = _FRAME_LINE.findall(trace.tb)
    if not frames:
        return ""
    path, line, function = frames[-1]
    return f" ({path}, line {line}, in {function})"


def _exception_line(index: int, error: BaseException) -> str:
    cause = error.__cause__
    trace = cause.tb if isinstance(cause, RemoteTraceback) else ""
    return error_line(index, type(error).__name__, _message_for_record(error, index), trace)


def _message_for_record(error: BaseException, index: int) -> str:
    """``str(error)`` as a runner's user reads it: the pool's messages name the record, not
    the pool's job id, and its notes (the attempts a retried record took) follow."""
    message = str(error)
    job_id = getattr(error, "job_id", None)
    if isinstance(error, PoolError) and job_id is not None:
        message = message.replace(f"job {job_id}", f"record {index}")
        message = message.replace("task_timeout=", "--timeout ")
    notes = [
        note.replace("the job ", "the record ") if note.startswith("minipool:") else note
        for note in map(str, getattr(error, "__notes__", ()))
    ]
    return "\n".join([message, *notes])
