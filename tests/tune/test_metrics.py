"""tune.metrics: the one home of "a metric value" and "better by mode"."""

from __future__ import annotations

import math

import pytest

from tune.metrics import best_first, best_of, better, finite_or_none, is_finite_number


@pytest.mark.parametrize(
    "value, finite",
    [(0, True), (0.5, True), (-3, True), (True, False), (False, False), (math.nan, False),
     (math.inf, False), (-math.inf, False), ("0.5", False), (None, False)],
)  # fmt: skip
def test_a_metric_value_is_a_real_finite_number_never_a_bool(value, finite):
    assert is_finite_number(value) is finite
    assert finite_or_none(value) == (float(value) if finite else None)


def test_better_follows_the_mode_and_a_tie_is_not_better():
    assert better("max", 0.9, 0.8) and not better("max", 0.8, 0.9)
    assert better("min", 0.1, 0.2) and not better("min", 0.2, 0.1)
    assert not better("max", 0.8, 0.8) and not better("min", 0.8, 0.8)
    # `by`: a margin to beat (a plateau's tolerance)
    assert not better("max", 0.805, 0.8, by=0.01) and better("max", 0.82, 0.8, by=0.01)
    assert not better("min", 0.795, 0.8, by=0.01) and better("min", 0.78, 0.8, by=0.01)


def test_best_of_and_best_first_rank_the_same_way():
    values = [0.3, 0.9, 0.1]
    assert best_of("max", values) == 0.9 and best_of("min", values) == 0.1
    rows = [{"id": "a", "v": 0.3}, {"id": "b", "v": 0.9}, {"id": "c", "v": 0.3}]
    assert [r["id"] for r in best_first(rows, "max", key=lambda r: r["v"])] == ["b", "a", "c"]
    assert [r["id"] for r in best_first(rows, "min", key=lambda r: r["v"])] == ["a", "c", "b"]
