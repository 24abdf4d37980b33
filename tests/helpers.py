"""Helpers shared by the tests and the jobs: bounded waits and leak checks.

Nothing here sleeps to let something happen; ``wait_for`` polls a condition
until a deadline and says whether it came true.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# How often wait_for looks again: short enough that tests stay fast, long
# enough that the poll itself costs nothing.
POLL_SECONDS = 0.005


def wait_for(predicate: Callable[[], object], timeout: float) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(POLL_SECONDS)
    return True


def wait_for_path(path: str | os.PathLike[str], timeout: float) -> None:
    """Block until ``path`` exists; ``TimeoutError`` after ``timeout`` seconds."""
    if not wait_for(Path(path).exists, timeout):
        raise TimeoutError(f"{path} did not appear within {timeout} s")


def in_pool_segment(buffer: Any) -> bool:
    """Whether ``buffer``'s memory (a numpy array's, say) is a mapping of a pool's shared
    memory segment, as /proc/self/maps shows it: read where it lies, not copied."""
    mapping = _mapping_of(buffer)
    return mapping is not None and len(mapping) == 6 and mapping[5].startswith(f"{SHM}/minipool-")


def segment_inode(buffer: Any) -> int:
    """The inode of the file ``buffer``'s memory is a mapping of (see in_pool_segment)."""
    mapping = _mapping_of(buffer)
    assert mapping is not None and in_pool_segment(buffer)
    return int(mapping[4])


def _mapping_of(buffer: Any) -> list[str] | None:
    """The /proc/self/maps line (its fields) of the mapping ``buffer``'s memory lies in."""
    address = buffer.__array_interface__["data"][0]
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        start, end = (int(part, 16) for part in fields[0].split("-"))
        if start <= address < end:
            return fields
    return None


# Where pools keep their shared memory segments (see minipool._segments).
SHM = "/dev/shm"


def segment_dirs(pid: int | None = None) -> set[str]:
    """The segment directories of pools of process ``pid`` (this one by default)."""
    prefix = f"minipool-{os.getpid() if pid is None else pid}-"
    return {name for name in os.listdir(SHM) if name.startswith(prefix)}


# ---- processes and file descriptors ------------------------------------------------


def _parent_pids() -> dict[int, int]:
    """pid -> parent pid of every process visible in /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # it exited while we looked
            continue
        # The command name may hold spaces and parentheses; the fields after
        # the last ")" are "state ppid ...".
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie nobody reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # ESRCH: it exited between open and read
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def descendants(pid: int | None = None) -> set[int]:
    """Every process below ``pid`` (this process by default), however deep."""
    root = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    for child, parent in _parent_pids().items():
        children.setdefault(parent, []).append(child)
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


# multiprocessing's shared-memory heap keeps each small arena (and its file
# descriptor) for the life of the process and reuses it: that is not a leak.
_PROCESS_WIDE_FDS = ("/dev/shm/pym-",)


def open_fds() -> dict[int, str]:
    """This process's open file descriptors and what each points to."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the descriptor listdir itself used, closed by now
            continue
    return fds


@dataclass(frozen=True)
class Snapshot:
    """What this process had before a test: the processes it may keep, its open fds."""

    allowed_processes: frozenset[int]
    fds: dict[int, str]
    segment_dirs: frozenset[str] = frozenset()

    @classmethod
    def take(cls, allowed_processes: frozenset[int] = frozenset()) -> Snapshot:
        return cls(allowed_processes, open_fds(), frozenset(segment_dirs()))


def leaked_processes(snapshot: Snapshot) -> set[int]:
    return descendants() - snapshot.allowed_processes


def leaked_dirs(snapshot: Snapshot) -> set[str]:
    return segment_dirs() - snapshot.segment_dirs


def leaked_fds(snapshot: Snapshot) -> dict[int, str]:
    return {
        fd: target
        for fd, target in open_fds().items()
        if snapshot.fds.get(fd) != target and not target.startswith(_PROCESS_WIDE_FDS)
    }


def check_no_leaks(snapshot: Snapshot, grace: float = 5.0) -> None:
    """Fail unless every process started since ``snapshot`` is gone, no new fd is open, and
    no pool's shared memory is left.

    Processes and shared memory get ``grace`` seconds to go; file descriptors must already
    be closed.
    """
    wait_for(lambda: not leaked_processes(snapshot) and not leaked_dirs(snapshot), grace)
    processes = leaked_processes(snapshot)
    fds = leaked_fds(snapshot)
    problems = []
    if processes:
        problems.append(f"child processes left running: {sorted(processes)}")
    if leaked_dirs(snapshot):
        problems.append(f"shared memory left in {SHM}: {sorted(leaked_dirs(snapshot))}")
    # What /proc shows covers these too; this names them as multiprocessing knows them.
    unjoined = multiprocessing.active_children()
    if unjoined:
        problems.append(f"multiprocessing children not joined: {unjoined}")
    if fds:
        problems.append(f"file descriptors left open: {fds}")
    assert not problems, "; ".join(problems)


def kill_processes(pids: set[int]) -> None:
    """SIGKILL the given processes (this test session's own leftovers)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def shut_down(pool: Any, timeout: float) -> bool:
    """``pool.shutdown()`` with a deadline; False if it did not return in time (it goes on
    in a daemon thread)."""
    thread = threading.Thread(target=pool.shutdown, name="test-shutdown", daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()


def run_leaving_nothing(
    tmp_path: Path, command: list[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``tmp_path`` with a temporary directory of its own (TMPDIR); it
    must exit 0 and leave that directory empty. Its output, for more checks."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(temporary)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(temporary.iterdir()) == [], "temporary files left behind"
    return done
