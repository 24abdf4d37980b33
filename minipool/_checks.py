"""Argument checks whose errors name the argument and the fix."""

from __future__ import annotations

from typing import Any


def check_positive(name: str, value: Any, none_means: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(
            f"{name} must be a positive integer, got {type(value).__name__} {value!r}; "
            f"pass {name}=None {none_means}"
        )
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}; pass {name}=None {none_means}")


def check_seconds(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number of seconds or None, got {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be more than 0 seconds, got {value!r}; pass None for none")
