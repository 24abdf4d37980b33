"""The leak check behind the ``make_pool`` fixture catches what it is meant to catch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import Snapshot, check_no_leaks


def test_leak_check_passes_when_nothing_is_left(leak_check: Snapshot) -> None:
    """A test that starts and reaps a process, and closes its fds, is clean."""
    subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=30)
    check_no_leaks(leak_check, grace=0.0)


def test_leak_check_reports_a_child_process_left_running(leak_check: Snapshot) -> None:
    """A child process still alive when the test ends fails the check, named by pid."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        with pytest.raises(AssertionError, match=rf"child processes left running: \[{child.pid}\]"):
            check_no_leaks(leak_check, grace=0.1)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


def test_leak_check_reports_a_grandchild_process(leak_check: Snapshot) -> None:
    """A process started by a child (as forkserver workers are) counts as a leak too."""
    code = (
        "import subprocess, sys; "
        "p = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()']); "
        "print(p.pid, flush=True); sys.stdin.read(); p.kill(); p.wait()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        grandchild = int(child.stdout.readline())
        with pytest.raises(AssertionError, match=str(grandchild)):
            check_no_leaks(leak_check, grace=0.1)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
        assert child.stdout is not None
        child.stdout.close()


def test_leak_check_reports_a_file_descriptor_left_open(leak_check: Snapshot) -> None:
    """A file descriptor opened during the test and not closed fails the check."""
    reader, writer = os.pipe()
    try:
        with pytest.raises(AssertionError, match=rf"file descriptors left open: .*\b{reader}\b"):
            check_no_leaks(leak_check, grace=0.0)
    finally:
        os.close(reader)
        os.close(writer)
