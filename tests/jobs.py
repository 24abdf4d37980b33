"""Job and init functions the tests send to workers.

They live in an importable module (not in test files) so that every start
method can find them by reference. Jobs that wait do so on a file the test
creates, always with a deadline, so that a broken test cannot hang a worker.
"""

from __future__ import annotations

import ctypes
import faulthandler
import logging
import logging.handlers
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from helpers import wait_for, wait_for_path

import minipool

# How long a job waits for the test to release it before it gives up; far
# below the per-test timeout, far above anything a passing test needs.
RELEASE_TIMEOUT = 20.0


# ---- plain jobs --------------------------------------------------------------------


def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def add3(a: int, b: int, c: int) -> int:
    return a + b + c


def echo(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


def getpid() -> int:
    return os.getpid()


# Set anew by a test in the caller: a fork worker sees the new value, a spawned one this.
CALLER_MARK = "as imported"


def caller_mark() -> str:
    return CALLER_MARK


def getppid() -> int:
    return os.getppid()


def sleep_then_return(seconds: float, value: Any) -> Any:
    """A job that takes ``seconds`` of (simulated) work."""
    time.sleep(seconds)
    return value


def square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def raise_value_error(message: str) -> None:
    raise ValueError(message)


def fail_on_odd(x: int) -> int:
    if x % 2:
        raise ValueError(f"odd: {x}")
    return x


def make_closure(offset: int) -> Any:
    def shifted(x: int) -> int:
        return x + offset

    return shifted


def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``: a job whose function arrives as an argument."""
    return fn(*args, **kwargs)


class Multiplier:
    """A callable object: ``Multiplier(3)(x) == 3 * x``."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def __call__(self, x: int) -> int:
        return self.factor * x


# ---- jobs that wait for the test -----------------------------------------------------


def block_until_released(started: str, release: str, value: Any = None) -> Any:
    """Mark ``started``, then wait for the test to create ``release``; return ``value``."""
    Path(started).touch()
    wait_for_path(release, RELEASE_TIMEOUT)
    return value


def block_on_zero(started: str, release: str, x: int) -> int:
    """``x``; item 0 first marks ``started`` and waits for the test to create ``release``."""
    if x == 0:
        block_until_released(started, release)
    return x


def block_on_zero_or_mark(started: str, release: str, directory: str, x: int) -> int:
    """``x``; item 0 waits for the test to create ``release``, the others leave a marker."""
    if x == 0:
        block_until_released(started, release)
    else:
        Path(directory, str(x)).touch()
    return x


def write_marker(directory: str, name: str) -> str:
    """Leave ``directory/name`` behind as proof that this job ran."""
    Path(directory, name).touch()
    return name


def loop_until_stop_requested(started: str) -> bool:
    """Mark ``started``, then run until ``minipool.stop_requested()``; True if it came."""
    Path(started).touch()
    return wait_for(minipool.stop_requested, RELEASE_TIMEOUT)


def mark_when_stop_requested(started: str, seen: str) -> None:
    """Mark ``started``; once ``minipool.stop_requested()`` turns true, mark ``seen``."""
    Path(started).touch()
    if wait_for(minipool.stop_requested, RELEASE_TIMEOUT):
        Path(seen).touch()


def stop_requested_now() -> bool:
    return minipool.stop_requested()


# ---- jobs that kill their worker -------------------------------------------------------


def kill_self_with_signal(signum: int) -> None:
    os.kill(os.getpid(), signum)
    # The signal may land a moment later; never return a result meanwhile.
    wait_for(lambda: False, RELEASE_TIMEOUT)


def os_exit(code: int) -> None:
    os._exit(code)


def segfault() -> None:
    # Under fork the worker inherits pytest's faulthandler, which would print
    # a Python traceback for this deliberate crash into the test output.
    faulthandler.disable()
    ctypes.string_at(0)


def block_then_raise(started: str, release: str) -> None:
    """Mark ``started``, wait for the test to create ``release``, then raise ValueError."""
    block_until_released(started, release)
    raise ValueError("raised once released")


def block_then_kill(started: str, release: str) -> None:
    """Mark ``started``, wait for the test to create ``release``, then SIGKILL the worker."""
    block_until_released(started, release)
    kill_self_with_signal(signal.SIGKILL)


def die_on_5(x: int) -> int:
    if x == 5:
        kill_self_with_signal(signal.SIGKILL)
    return x * x


# ---- results and exceptions that cannot travel ----------------------------------------


def die_at_30000(x: int) -> int:
    """Tiny enough to run in untracked chunks; SIGKILLs its worker at x == 30000."""
    if x == 30_000:
        os.kill(os.getpid(), signal.SIGKILL)
    return x + 1


def return_lock() -> Any:
    return threading.Lock()


def return_closure(offset: int) -> Any:
    return lambda x: x + offset


class UnpicklableError(Exception):
    """An exception that holds a lock, so pickling it fails."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def raise_unpicklable_exception() -> None:
    raise UnpicklableError("holds a lock")


class TwoArgumentError(Exception):
    """Pickles, but cannot be rebuilt: ``__init__`` wants two arguments (CPython gh-79492)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"code {code}: {reason}")
        self.code = code
        self.reason = reason


def raise_two_argument_error() -> None:
    raise TwoArgumentError(7, "custom __init__")


# ---- init and teardown ---------------------------------------------------------------


def init_value(value: Any) -> Any:
    return value


def read_state() -> Any:
    return minipool.worker_state()


def init_with_markers(directory: str) -> Iterator[dict[str, Any]]:
    """A generator init: one ``init-<pid>`` line at start, one ``teardown-<pid>`` at exit."""
    pid = os.getpid()
    _append_line(Path(directory, f"init-{pid}"))
    yield {"pid": pid}
    _append_line(Path(directory, f"teardown-{pid}"))


def init_whose_teardown_raises(directory: str) -> Iterator[None]:
    """A generator init whose teardown fails, after leaving a marker that it ran."""
    yield
    _append_line(Path(directory, f"teardown-{os.getpid()}"))
    raise RuntimeError("teardown failed")


def block_then_return_big(started: str, release: str, megabytes: int) -> bytes:
    """Wait for ``release``, then return ``megabytes`` of data (a long write to the pipe)."""
    block_until_released(started, release)
    return b"x" * (megabytes << 20)


def _append_line(path: Path) -> None:
    with path.open("a") as file:
        file.write("x\n")


def state_pid() -> tuple[int, int]:
    """The pid the init recorded in the state, and the pid running the job."""
    return minipool.worker_state()["pid"], os.getpid()


class InitFailure(Exception):
    pass


def init_raises(message: str, release: str | None = None) -> None:
    """Fail init, once ``release`` exists if given (so the test can queue jobs first)."""
    if release is not None:
        wait_for_path(release, RELEASE_TIMEOUT)
    raise InitFailure(message)


def init_fails_first_time(marker: str) -> str:
    """Fail init in the first worker process that runs it; succeed in every later one."""
    try:
        with open(marker, "x"):
            pass
    except FileExistsError:
        return "connected"
    raise InitFailure("the database refused the first connection")


def init_exits(code: int, release: str) -> None:
    """End the worker process from init, once ``release`` exists."""
    wait_for_path(release, RELEASE_TIMEOUT)
    os._exit(code)


# ---- SQLite ------------------------------------------------------------------------------


class RowWriter:
    """One worker's connection to the shared database; rows are written in small batches."""

    BATCH = 50

    def __init__(self, path: str) -> None:
        self.connection = sqlite3.connect(path, timeout=30.0)
        self.connection.execute("PRAGMA busy_timeout=30000")
        # The database was created in WAL mode (persistent); switching modes
        # here would race the other workers for an exclusive lock.
        (mode,) = self.connection.execute("PRAGMA journal_mode").fetchone()
        if mode != "wal":
            raise RuntimeError(f"expected a WAL database, found journal_mode={mode}")
        self.rows: list[tuple[int, int]] = []

    def insert(self, value: int) -> None:
        self.rows.append((value, os.getpid()))
        if len(self.rows) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        with self.connection:  # one transaction, committed on exit
            self.connection.executemany("INSERT INTO items VALUES (?, ?)", self.rows)
        self.rows.clear()

    def close(self) -> None:
        self.flush()
        self.connection.close()


def open_row_writer(path: str) -> Iterator[RowWriter]:
    writer = RowWriter(path)
    yield writer
    writer.close()


def insert_row(value: int) -> int:
    minipool.worker_state().insert(value)
    return value


# ---- values that pickle in the worker but do not unpickle in the caller -------------------


def _rebuild_in_workers_only(cls: type, args: tuple[Any, ...]) -> Any:
    if multiprocessing.parent_process() is None:  # the caller: the test process
        raise RuntimeError(f"{cls.__name__} cannot be unpickled in the caller")
    return cls(*args)


class WorkerOnlyValue:
    """A result that unpickles in worker processes but not in the caller."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_in_workers_only, (WorkerOnlyValue, ()))


def return_worker_only_value() -> WorkerOnlyValue:
    return WorkerOnlyValue()


class WorkerOnlyError(Exception):
    """An exception that unpickles in worker processes but not in the caller."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_in_workers_only, (WorkerOnlyError, self.args))


def raise_worker_only_error() -> None:
    raise WorkerOnlyError("only workers can rebuild me")


def _exit_in_caller(code: int) -> Any:
    if multiprocessing.parent_process() is None:  # the caller
        sys.exit(code)
    return ExitsInCaller()


class ExitsInCaller:
    """A result whose unpickling raises ``SystemExit`` in the caller (and only there)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_exit_in_caller, (3,))


class ExitsWhilePickled:
    """A result whose pickling raises ``SystemExit`` in the worker."""

    def __reduce__(self) -> tuple[Any, ...]:
        raise SystemExit(4)


def return_exits_while_pickled() -> ExitsWhilePickled:
    return ExitsWhilePickled()


def return_exits_in_caller() -> ExitsInCaller:
    return ExitsInCaller()


class ErrorWhoseStrExits(Exception):
    """An exception whose ``__str__`` raises ``SystemExit`` in workers (where the traceback
    is formatted), and reads "a hostile __str__" in the caller."""

    def __str__(self) -> str:
        if multiprocessing.parent_process() is not None:
            raise SystemExit(5)
        return "a hostile __str__"


def raise_error_whose_str_exits() -> None:
    raise ErrorWhoseStrExits()


def return_two_argument_error() -> TwoArgumentError:
    """An exception as a result (not raised) that pickles but cannot be rebuilt (gh-79492)."""
    return TwoArgumentError(7, "custom __init__")


# Results that pickle in a worker but do not unpickle in the caller, by name.
UNREADABLE_RESULTS: dict[str, Any] = {
    "class-the-caller-cannot-rebuild": WorkerOnlyValue,
    "exception-instance-gh-79492": lambda: TwoArgumentError(7, "custom __init__"),
    "system-exit-while-unpickled": ExitsInCaller,
}


def unreadable_at(positions: frozenset[int], kind: str, x: int) -> Any:
    """``x``, except at ``positions``: a result of ``kind`` (see ``UNREADABLE_RESULTS``)."""
    if x in positions:
        return UNREADABLE_RESULTS[kind]()
    return x


# ---- arguments that pickle in the caller but do not unpickle in a worker -------------------


def _rebuild_in_caller_only(cls: type, args: tuple[Any, ...]) -> Any:
    if multiprocessing.parent_process() is not None:  # a worker
        raise RuntimeError(f"{cls.__name__} cannot be unpickled in a worker")
    return cls(*args)


class CallerOnlyValue:
    """An argument that pickles in the caller but cannot be rebuilt in a worker."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_in_caller_only, (CallerOnlyValue, ()))


def fail_first_attempts(directory: str, key: str, failures: int, how: str) -> int:
    """Fail (``how``: "raise", "kill" or "hang") on the first ``failures`` attempts; then
    return the attempt number. Attempts are counted in a file, across processes."""
    counter = Path(directory) / key
    with counter.open("a") as file:
        file.write("x")
    attempt = len(counter.read_text())
    if attempt <= failures:
        if how == "raise":
            raise ValueError(f"attempt {attempt} of {key} failed")
        if how == "kill":
            kill_self_with_signal(signal.SIGKILL)
        time.sleep(60)  # "hang": until task_timeout kills the worker
    return attempt


_LEAKED: list[bytes] = []


def leak_and_report(megabytes: int) -> tuple[int, int]:
    """Keep ``megabytes`` of memory for good (a leak); return (pid, resident bytes now)."""
    _LEAKED.append(b"x" * (megabytes << 20))
    with open("/proc/self/statm", "rb") as statm:
        resident = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return os.getpid(), resident


def raise_memory_error() -> None:
    raise MemoryError("the job ran out of memory")


def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt("raised by the job itself")


def system_exit(code: int) -> None:
    sys.exit(code)


# ---- jobs that log ---------------------------------------------------------------------


def log_structlog(x: int) -> int:
    minipool.get_logger(item=x, source="test").info("job ran", square=x * x)
    return x


def log_stdlib(name: str, level: int, message: str) -> None:
    logging.getLogger(name).log(level, message, extra={"color": "blue"})


# Every attribute of a record a formatter can name (taskName exists from 3.12).
EVERY_RECORD_FIELD = (
    "%(name)s|%(levelno)d|%(levelname)s|%(pathname)s|%(filename)s|%(module)s|%(lineno)d|"
    "%(funcName)s|%(created)f|%(asctime)s|%(msecs)d|%(relativeCreated)d|%(thread)d|"
    "%(threadName)s|%(processName)s|%(process)d|%(message)s|%(color)s"
    + ("|%(taskName)s" if sys.version_info >= (3, 12) else "")
)


class _Formatted(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(EVERY_RECORD_FIELD))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def log_stdlib_formatted(name: str) -> str:
    """Log one record with arguments, an extra and a stack; return it as the worker formats it."""
    logger = logging.getLogger(name)
    local = _Formatted()
    logger.addHandler(local)
    try:
        logger.warning("%s and %d", "words", 7, extra={"color": "red"}, stack_info=True)
    finally:
        logger.removeHandler(local)
    [line] = local.lines
    return line


def log_stdlib_unpicklable(name: str) -> None:
    logging.getLogger(name).info("odd extra", extra={"lock": threading.Lock(), "color": "green"})


def log_at_each_level(name: str) -> None:
    """One stdlib record and one structlog event at DEBUG, INFO and WARNING."""
    for level in (logging.DEBUG, logging.INFO, logging.WARNING):
        logging.getLogger(name).log(level, "stdlib")
        minipool.get_logger(logger=name).log(level, "structlog")


def log_exception(name: str) -> None:
    try:
        1 / 0  # noqa: B018 -- the exception is the point
    except ZeroDivisionError:
        logging.getLogger(name).exception("stdlib failure")
        minipool.get_logger().exception("structlog failure")


def log_then_crash(how: str) -> None:
    """Log through both APIs, then die without any chance to flush."""
    minipool.get_logger().info("last words", how=how)
    logging.getLogger("minipool.tests.crash").warning("stdlib last words")
    if how == "sigkill":
        kill_self_with_signal(signal.SIGKILL)
    elif how == "segfault":
        segfault()
    else:
        os._exit(3)


def log_then_wait(release: str) -> str:
    minipool.get_logger().info("waiting")
    wait_for_path(release, RELEASE_TIMEOUT)
    return "released"


def log_many(count: int, size: int) -> int:
    log = minipool.get_logger()
    for number in range(count):
        log.info("many", number=number, padding="x" * size)
    return count


def log_if_round(x: int) -> int:
    """Fast enough that map runs it untracked; logs for every hundredth item."""
    if x % 100 == 0:
        minipool.get_logger().info("round", item=x)
    return x


def log_from_thread() -> None:
    thread = threading.Thread(target=lambda: minipool.get_logger().info("from a thread"))
    thread.start()
    thread.join()


def log_unpicklable() -> None:
    minipool.get_logger().info("odd value", lock=threading.Lock())


def log_value_that_exits_in_the_caller() -> None:
    minipool.get_logger().info("exits", value=ExitsInCaller())


def log_and_print(x: int) -> int:
    print(f"printed by job {x}", flush=True)
    return x


def open_logged_resource(tag: str) -> Iterator[str]:
    """A generator init that logs when it opens and when it closes."""
    log = minipool.get_logger(tag=tag)
    log.info("opened")
    yield tag
    log.info("closed")


def log_until_stop_requested(started: str) -> bool:
    minipool.get_logger().info("started")
    Path(started).touch()
    stopped = wait_for(minipool.stop_requested, RELEASE_TIMEOUT)
    minipool.get_logger().info("stopping")
    return stopped


# ---- jobs whose result or arguments misbehave while they are pickled -----------------------


def _misbehave(how: str) -> None:
    """Kill this process (``crash``: SIGKILL; ``exit``: os._exit(3)) or raise (``raise``)."""
    if how == "crash":
        kill_self_with_signal(signal.SIGKILL)
    elif how == "exit":
        os._exit(3)
    raise ValueError(f"misbehaved while pickling ({how})")


class MisbehavingResult:
    """A result whose pickling in the worker kills the worker or raises, by ``how``."""

    def __init__(self, how: str) -> None:
        self.how = how

    def __reduce__(self) -> tuple[Any, ...]:
        _misbehave(self.how)
        raise AssertionError("unreachable")


def return_misbehaving_result(how: str) -> MisbehavingResult:
    return MisbehavingResult(how)


def _rebuild_or_misbehave(how: str) -> Any:
    if multiprocessing.parent_process() is not None:  # a worker
        _misbehave(how)
    return MisbehavingArgument(how)


class MisbehavingArgument:
    """An argument that pickles in the caller; unpickling it in a worker kills it or raises."""

    def __init__(self, how: str) -> None:
        self.how = how

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_or_misbehave, (self.how,))


def take_argument(argument: Any) -> str:
    return "ran"


def _wait_then_rebuild(started: str, release: str) -> SlowToPickle:
    return SlowToPickle(started, release)


class SlowToPickle:
    """Pickling this marks ``started`` and waits for ``release`` (a result that takes long
    to pickle); unpickling it is quick."""

    def __init__(self, started: str, release: str) -> None:
        self.started = started
        self.release = release

    def __reduce__(self) -> tuple[Any, ...]:
        block_until_released(self.started, self.release)
        return (_wait_then_rebuild, (self.started, self.release))


def return_slow_to_pickle(started: str, release: str) -> SlowToPickle:
    return SlowToPickle(started, release)


def block_on_zero_else_sleep(started: str, release: str, seconds: float, x: int) -> int:
    """``x``; item 0 waits for the test to create ``release``, the others take ``seconds``."""
    if x == 0:
        block_until_released(started, release)
    else:
        time.sleep(seconds)
    return x


def block_on_negative(started: str, release: str, x: int) -> int:
    """``x`` at once; a negative ``x`` first waits for the test to create ``release``."""
    if x < 0:
        block_until_released(started, release)
    return x


def init_blocks_until_released(release: str) -> str:
    """An init that waits for the test: a worker still starting."""
    wait_for_path(release, RELEASE_TIMEOUT)
    return "ready"


# ---- jobs that fork --------------------------------------------------------------------


def fork_and_come_back(how: str, fork_at: int, x: int) -> Any:
    """At ``x == fork_at``, fork; the child logs, then comes back from the job as ``how``
    says (``return``, ``raise``, ``exit``: ``sys.exit(7)``) instead of exiting. The parent
    waits for the child and returns its exit status; every other ``x`` returns itself."""
    if x != fork_at:
        return x
    child = os.fork()
    if child == 0:
        minipool.get_logger().info("from the forked child")
        if how == "raise":
            raise ValueError("raised in the forked child")
        if how == "exit":
            sys.exit(7)
        return "returned in the forked child"
    minipool.get_logger().info("from the job")
    _, status = os.waitpid(child, 0)
    return ("child status", os.waitstatus_to_exitcode(status))


# ---- jobs and inits that keep a worker from ending -------------------------------------------

# Long enough that any test waiting for it fails first; short enough to end on its own.
STUCK_SECONDS = 60.0
_left_open: list[Any] = []  # pools and threads jobs leave behind, in their worker


def init_hangs(directory: str) -> None:
    """An init that never ends (in time): marks ``directory/init-PID`` first."""
    Path(directory, f"init-{os.getpid()}").touch()
    time.sleep(STUCK_SECONDS)


def init_hangs_in_one_worker(directory: str) -> None:
    """The first worker to get here hangs in its init; the others start."""
    try:
        Path(directory, "hung").touch(exist_ok=False)
    except FileExistsError:
        return
    time.sleep(STUCK_SECONDS)


def leave_a_pool_open(x: int) -> int:
    """Run a job on a nested pool (fork) and leave that pool open."""
    pool = minipool.Pool(1, start_method="fork")
    _left_open.append(pool)
    return int(pool.submit(square, x).result(timeout=RELEASE_TIMEOUT))


def leave_a_thread_running() -> str:
    """Start a thread that is not a daemon and outlives the job by far."""
    thread = threading.Thread(target=time.sleep, args=(STUCK_SECONDS,), daemon=False)
    thread.start()
    _left_open.append(thread)
    return "started"


def start_a_process_then(how: str, pid_file: str, own_session: bool = False) -> int:
    """Start a process that sleeps, write its pid to ``pid_file``, then ``how``:
    ``return`` its pid, ``crash`` (``os._exit(1)``) or ``overrun`` (sleep past any timeout)."""
    child = subprocess.Popen(
        [sys.executable, "-c", f"import time; time.sleep({STUCK_SECONDS})"],
        start_new_session=own_session,
    )
    Path(pid_file).write_text(str(child.pid))
    if how == "crash":
        os._exit(1)
    if how == "overrun":
        time.sleep(STUCK_SECONDS)
    return child.pid


# ---- multiprocessing's primitives as init_args ------------------------------------------


def init_keep_args(*args: Any) -> tuple[Any, ...]:
    """The worker's state is init's arguments, as they arrived."""
    return args


def state_type_names() -> list[str]:
    return [type(part).__name__ for part in minipool.worker_state()]


def use_primitives(x: int) -> int:
    """Use each primitive ``init_keep_args`` got: (Queue, SimpleQueue, Lock, RLock, Event,
    Semaphore, Value, Array); the caller sees what it did through them."""
    queue, simple_queue, lock, rlock, event, semaphore, value, array = minipool.worker_state()
    with lock, rlock, semaphore, value.get_lock():
        value.value += 1
        array[x] = x * x
    queue.put(x)
    simple_queue.put(-x)
    event.set()
    return x


class PicklesUntil:
    """An argument that pickles until ``path`` exists, then raises as it is pickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        if os.path.exists(self.path):
            raise RuntimeError("this argument no longer pickles")
        return (PicklesUntil, (self.path,))


# ---- results whose lifetime a test follows ----------------------------------------------


class Box:
    """A result a test can hold a weak reference to."""

    def __init__(self, value: int) -> None:
        self.value = value


def box(x: int) -> Box:
    """``Box(x)``, or for 7 a ValueError."""
    if x == 7:
        raise ValueError("no box for 7")
    return Box(x)


def init_queue_handler(queue: Any) -> None:
    """The logging cookbook's recipe: a worker's records go to ``queue``."""
    logging.getLogger("cookbook").addHandler(logging.handlers.QueueHandler(queue))


def log_to_cookbook(message: str) -> None:
    logging.getLogger("cookbook").warning(message)


_kept_values: list[Any] = []


def identity_and_pid(value: Any) -> tuple[Any, int, int]:
    """The argument as the job got it, its id, and the worker's pid: which jobs shared one
    object. The argument is kept, so that no later one can take its id."""
    _kept_values.append(value)
    return value, id(value), os.getpid()
