"""A pool's options, checked once in ``Pool()`` and then handed to its backend as they are."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ._checks import check_positive, check_seconds
from ._logging import LogSink, check_log_level


@dataclass(frozen=True, slots=True)
class PoolOptions:
    workers: int | None  # None only on a Dask cluster of the user's, which sizes itself
    init: Callable[..., Any] | None
    init_args: tuple[Any, ...]  # each backend sends them its way (see processes.handover)
    start_method: str | None
    max_tasks_per_worker: int | None
    max_worker_memory: int | None
    task_timeout: float | None
    retries: int
    log_sink: LogSink | None
    log_level: int | None
    cluster: Any


def check_options(
    workers: int | None,
    *,
    init: Callable[..., Any] | None,
    init_args: Iterable[Any],
    start_method: str | None,
    max_tasks_per_worker: int | None,
    max_worker_memory: int | None,
    task_timeout: float | None,
    retries: int,
    log_sink: Callable[[dict[str, Any]], object] | None,
    log_level: int | str | None,
    cluster: Any,
) -> PoolOptions:
    """``Pool``'s arguments as ``PoolOptions``; a bad one raises an error that names it."""
    if workers is not None or cluster is None or cluster == "local":
        workers = _cpu_count() if workers is None else workers
        check_positive("workers", workers, "for one per CPU")
    if max_tasks_per_worker is not None:
        check_positive("max_tasks_per_worker", max_tasks_per_worker, "to never recycle")
    if max_worker_memory is not None:
        check_positive("max_worker_memory", max_worker_memory, "for no limit")
    if task_timeout is not None:
        check_seconds("task_timeout", task_timeout)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"retries must be a whole number, 0 or more, got {retries!r}")
    if log_sink is not None and not callable(log_sink):
        raise TypeError(
            f"log_sink must be a callable that takes each worker event dict, got {log_sink!r}"
        )
    return PoolOptions(
        workers=workers,
        init=_check_init(init),
        init_args=_check_init_args(init_args),
        start_method=start_method,
        max_tasks_per_worker=max_tasks_per_worker,
        max_worker_memory=max_worker_memory,
        task_timeout=task_timeout,
        retries=retries,
        log_sink=log_sink,
        log_level=check_log_level(log_level),
        cluster=cluster,
    )


def one_spelling(name: str, value: Any, alias: str, alias_value: Any, unset: Any = None) -> Any:
    """The value of an option that has two names, minipool's and ``ProcessPoolExecutor``'s
    (``alias``); giving both is a ``TypeError``, as the contract says."""
    if alias_value is unset:
        return value
    if value is not unset:
        raise TypeError(
            f"{name}= and {alias}= are the same option ({alias} is ProcessPoolExecutor's "
            f"name for it); pass only one of them"
        )
    return alias_value


def start_method_of(mp_context: Any) -> str:
    """The start method of ``mp_context`` (``ProcessPoolExecutor``'s keyword)."""
    get_start_method = getattr(mp_context, "get_start_method", None)
    if get_start_method is None:
        raise TypeError(
            "mp_context must be a multiprocessing context, such as "
            f"multiprocessing.get_context('spawn'), got {mp_context!r}"
        )
    return str(get_start_method())


def _check_init(init: Any) -> Callable[..., Any] | None:
    if init is not None and not callable(init):
        raise TypeError(f"init must be a callable run once in each worker, got {init!r}")
    return init  # type: ignore[no-any-return]


def _check_init_args(init_args: Any) -> tuple[Any, ...]:
    if isinstance(init_args, (str, bytes)) or not isinstance(init_args, Iterable):
        raise TypeError(f"init_args must be a tuple of arguments for init, got {init_args!r}")
    return tuple(init_args)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def name_of(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)
