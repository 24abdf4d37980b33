"""Who a dead worker's death is blamed on: the one rule, for crashes and timeouts alike.

A worker dies holding tasks: some it never claimed, perhaps one it was
running, some it finished but whose outcomes it had not sent. Its gate says
which task it claimed last and what it was doing then (see ``shared.Gate``):

- the running cell names a job of the claimed task: that job was provably
  running (or having its arguments unpickled, or its result pickled); it is
  the culprit, and every other job goes back to the queue. A worker the
  master killed for overrunning blames only the job it was killed for: if
  that one has just finished, the next is innocent.
- ``CHUNK_WIDE``: the worker was busy with the claimed task as a whole
  (several jobs' arguments, an untracked chunk, its batched results), so which
  job killed it is unknown. The task's jobs run again, tracked more closely
  (untracked or adaptive → tracked, tracked → one job per task), so that a job that kills
  its worker again is pinned down then; at most twice.
- ``IDLE``, or a job that already has its outcome: nothing it held was
  running. Nobody is blamed.

Every job without an outcome that is not the culprit runs again, its
attempts unchanged: it did nothing wrong, whether it never started or had
finished with its outcome still in the dead worker's buffers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..._context import CHUNK_WIDE
from ..._messages import TRACKED
from ..._tasks import Task
from .handle import Held


@dataclass(frozen=True, slots=True)
class Verdict:
    culprit: Task | None  # the one job blamed, as a task of its own
    rerun: list[Task]  # every other job without an outcome, in order


def judge(held: Sequence[Held], claimed: int, running: int, killed_for: int | None) -> Verdict:
    """The verdict on a dead worker that held ``held`` (oldest first)."""
    culprit = None
    rerun: list[Task] = []
    for entry in held:
        if entry.task.receiver.abandoned:
            continue  # its caller cancelled it: nothing to run, nobody to tell
        task = entry.rest()
        if entry.number != claimed:
            rerun.append(task)
        elif running == CHUNK_WIDE:
            rerun += _closer(task)
        else:
            position = running - task.first_job_id
            if 0 <= position < task.size and killed_for in (None, running):
                culprit = task.part(position, position + 1)
                rerun += [task.part(0, position), task.part(position + 1, task.size)]
            else:
                rerun.append(task)
    return Verdict(culprit, [task for task in rerun if task.size])


def _closer(task: Task) -> list[Task]:
    """``task`` cut so that a death in it next time names its job."""
    if task.tracking != TRACKED:
        return [task.part(0, task.size, tracking=TRACKED)]
    return task.pieces(1)
