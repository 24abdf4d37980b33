"""One run over a pool: records fed to ``pool.map``, each outcome written as one line.

    read_records (caller) ──► pool.map(run_record, ordered or not, positions) ──► workers
      skips what --resume finds done                     run_record: decode, fn(value),
                                                         encode the output line
    LineWriter ◄── one write per chunk of outcomes ◄── a line, or the job's exception

The caller only moves text: JSON is decoded and encoded in the workers. A
job's exception comes back as an exception (so that ``--retries`` applies
to it) and becomes its error line here. Ctrl-C or SIGTERM sets a flag: the
input stops, the pool is stopped, the results already finished are written,
and the run exits 130; a second signal kills the workers at once. ``--halt``
stops the input and the pool the same way once enough records failed (exit
4). With ``--joblog`` the workers run ``run_record_with_facts``, and each
line comes back with the facts of its run, for the job log's line.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError
from types import FrameType
from typing import Any

from .._errors import InitError, WorkerCrashed
from .._exits import HINT_AFTER_SECONDS
from .._map import map_jobs
from .._map_results import MapIterator
from .._pool import Pool
from .._progress import Progress, progress_bar
from .job import run_record, run_record_with_facts
from .joblog import JobFacts, JobLog, facts_of
from .logs import LogSink
from .messages import exception_line, init_failed
from .options import (
    EXIT_FAILURES,
    EXIT_HALTED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTPUT_CLOSED,
    RunOptions,
)
from .output import LineWriter, OutputScan, is_error_line
from .records import Record, input_format, records_in
from .targets import UsageError


class PoolRun:
    """One run: the pool, the outcomes written as they come, the counts, the interrupt."""

    def __init__(
        self,
        options: RunOptions,
        writer: LineWriter,
        sink: LogSink,
        earlier: OutputScan | None,
        joblog: JobLog | None = None,
    ):
        self.options = options
        self.writer = writer
        self.sink = sink
        self.joblog = joblog
        self.joblog_entries: list[tuple[int, JobFacts | None, Any, str]] = []  # of a chunk
        self.halted = False  # --halt's failures were reached: nothing more is dispatched
        self.records: Iterator[Record] = iter(())  # the input, as _feed reads it
        self.input_ended = False  # every record of the input was fed to the pool
        self.left_unrun = False  # some record fed to the pool never ran (stop() cancelled it)
        self.pool: Pool | None = None
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
            pool = self.pool = self._start_pool(init)
            self._act_on_signals(pool)
            self.sink.runner_event("run started", workers=pool.workers, skipped=self.skipped)
            self._write_all(self._outcomes(pool, fn, records), bar)
            pool.shutdown()
        except InitError as error:
            if pool is not None:
                pool.shutdown()
            raise init_failed(error, self.options.init) from None
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
            functools.partial(run_record_with_facts if self.joblog else run_record, fn),
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
        self.records = iter(records)
        for position, record in enumerate(self.records):
            if self.interrupted or self.halted:
                return  # the input ends here: nothing more is dispatched
            self.indices[position] = record[0]
            yield record
        self.input_ended = True

    def _all_ran(self) -> bool:
        """Whether every record of the input ran (looking at most one record ahead)."""
        if self.left_unrun:
            return False
        return self.input_ended or next(self.records, None) is None

    def _write_all(self, outcomes: MapIterator, bar: Progress | None) -> None:
        """Each chunk's lines in one write, as the chunk comes in."""
        try:
            for chunk in outcomes.chunks:
                failed_before = self.failed
                lines = [line for line in map(self._line, chunk) if line is not None]
                self.writer.write(lines)
                self.sink.flush()  # the events of these records, with their lines
                self.written += len(lines)
                if self.joblog is not None:
                    self.joblog.write(self.joblog_entries)
                    self.joblog_entries.clear()
                if bar is not None:
                    bar.update(len(lines), self.failed - failed_before)
                if self.failed > failed_before:
                    self._halt_if_asked()
        except CancelledError:  # the input left unread after stop(): --resume reads it
            self.left_unrun = True

    def _halt_if_asked(self) -> None:
        """--halt: once its failures are reached, stop dispatching; the records in hand
        finish and their lines are written."""
        halt = self.options.halt
        if halt is None or self.halted or not halt.reached(self.failed, self.written):
            return
        self.halted = True
        assert self.pool is not None
        self.pool.stop()  # the rest is cancelled: no line, --resume runs it

    def _line(self, outcome: tuple[int, Any]) -> str | None:
        position, value = outcome
        index = self.indices.pop(position)
        if isinstance(value, tuple):  # with --joblog: the line and the facts of its run
            value, facts = value
            self._log_job(index, facts, None, _outcome_of(value))
        if isinstance(value, str):
            self.failed += is_error_line(value)  # a record the worker could not read or write
            return value
        if isinstance(value, InitError):
            raise value  # the pool broke: no record ran, none gets a line
        if isinstance(value, CancelledError) or (
            self.abandoned and isinstance(value, WorkerCrashed)
        ):
            self.left_unrun = True
            return None  # never ran, or killed by a second Ctrl-C: --resume runs it
        self.failed += 1
        self._log_job(index, facts_of(value), value, type(value).__name__)
        return exception_line(index, value)

    def _log_job(self, index: int, facts: JobFacts | None, error: Any, outcome: str) -> None:
        if self.joblog is not None:
            self.joblog_entries.append((index, facts, error, outcome))

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
        if self.halted and not self._all_ran():  # else an ordinary end
            print(
                f"minipool: halted (--halt {self.options.halt}) after {self.failed} of "
                f"{self.written} records failed; their lines are in {output}, and the rest "
                "did not run (--resume-failed runs both).",
                file=sys.stderr,
            )
            return EXIT_HALTED
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


def _outcome_of(line: str) -> str:
    """A joblog's outcome column for a line the worker wrote: ok, or its error type."""
    if not is_error_line(line):
        return "ok"
    return str(json.loads(line)["error"]["type"])


def _end_now(pool: Pool | None) -> None:
    """Kill the records in progress and close the pool: nobody waits for them.

    stop() first: killed workers' records would otherwise run again on new
    workers, and shutdown(wait=True) would wait for the whole input (it hung
    so on a reader that left, while the map it fed was no longer read).
    """
    if pool is not None:
        pool.stop()
        pool._backend.kill_workers()
        pool.shutdown(wait=True)


def _restore_signals(previous: dict[int, Any]) -> None:
    for number, handler in previous.items():
        signal.signal(number, handler)
