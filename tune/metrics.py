"""What counts as a metric value, and which of two is better: the rules every ranking shares.

The summary's best trial, `search.stop`'s target and plateau, the runs' `best_` metric, `list`,
the notes' top table, the heatmap and the Pareto front all rank by these, so that they can never
disagree on a tie, a NaN or a bool.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

MODES = ("max", "min")

T = TypeVar("T")


def is_finite_number(value: Any) -> bool:
    """A real, finite metric value (a bool, NaN or inf is not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def finite_or_none(value: Any) -> float | None:
    """`value` as a float when it is a finite number, else None."""
    return float(value) if is_finite_number(value) else None


def better(mode: str, value: float, than: float, by: float = 0.0) -> bool:
    """Whether `value` beats `than` by more than `by`, where `mode` ("max" or "min") says
    which way is up. A tie is not better: the first to reach a value keeps it."""
    return value > than + by if mode == "max" else value < than - by


def best_of(mode: str, values: Iterable[float]) -> float:
    """The best of `values` by `mode` (at least one value)."""
    return max(values) if mode == "max" else min(values)


def best_first(items: Iterable[T], mode: str, key: Callable[[T], float]) -> list[T]:
    """`items` sorted best first by `key` (stable: ties keep their order)."""
    return sorted(items, key=key, reverse=mode == "max")
