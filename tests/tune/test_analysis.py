"""tune.analysis: fANOVA importance on synthetic trials, and the Pareto front."""

from __future__ import annotations

import random

import pytest

from tune.analysis import param_importance, pareto_front
from tune.config.space import Choice, Fixed, LogUniform

SPACE = {
    "activation": Choice(["relu", "tanh", "sigmoid"]),
    "augment": Choice(["none", "crop"]),
    "lr": LogUniform(1e-4, 1e-2),
    "batch_size": Fixed(64),
}


def synthetic_rows(n: int, seed: int = 0) -> list[dict]:
    """Trials whose val_acc is decided by the activation alone (plus a little noise)."""
    rng = random.Random(seed)
    score = {"relu": 0.95, "tanh": 0.7, "sigmoid": 0.3}
    rows = []
    for i in range(n):
        config = {
            "activation": rng.choice(list(score)),
            "augment": rng.choice(["none", "crop"]),
            "lr": 10 ** rng.uniform(-4, -2),
        }
        acc = score[config["activation"]] + rng.gauss(0, 0.01)
        rows.append({"trial_id": f"t{i}", "config": config, "val_acc": acc, "outcome": "finished"})
    return rows


def test_the_parameter_that_decides_the_metric_is_the_most_important():
    importance = param_importance(synthetic_rows(24), SPACE, "val_acc", "max")
    assert importance is not None
    assert set(importance) == {"activation", "augment", "lr"}  # a fixed key is not searched
    assert list(importance)[0] == "activation"
    assert importance["activation"] > 0.8
    assert sum(importance.values()) == pytest.approx(1.0)
    # Minimizing the same values ranks the same key first: importance is about variance.
    assert list(param_importance(synthetic_rows(24), SPACE, "val_acc", "min"))[0] == "activation"


def test_importance_needs_six_trials_with_the_metric():
    rows = synthetic_rows(8)
    for row in rows[:3]:
        row["val_acc"] = None  # diverged or failed: no metric
    assert param_importance(rows, SPACE, "val_acc", "max") is None  # 5 usable
    assert param_importance(synthetic_rows(6), SPACE, "val_acc", "max") is not None
    assert param_importance(synthetic_rows(6), {"batch_size": Fixed(64)}, "val_acc", "max") is None


def test_pareto_front_keeps_what_no_cheaper_trial_beats():
    points = [("a", 10, 0.90), ("b", 20, 0.95), ("c", 15, 0.85), ("d", 40, 0.94), ("e", 5, 0.5)]
    assert [p[0] for p in pareto_front(points, "max")] == ["e", "a", "b"]
    # For a loss (min), lower values are better.
    losses = [("a", 10, 0.4), ("b", 20, 0.2), ("c", 30, 0.3)]
    assert [p[0] for p in pareto_front(losses, "min")] == ["a", "b"]
    assert pareto_front([], "max") == []
