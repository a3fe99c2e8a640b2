"""Shared tracking fixtures: a search config, a trial config and one epoch's result."""

from __future__ import annotations

import random

from tune.config.schema import SearchConfig
from tune.config.space import Choice, LogUniform
from tune.outcomes import TrialRecord
from tune.summary import summarize
from tune.tracking.tracker import Tracker

CFG = SearchConfig(
    name="s1",
    dataset="mnist5k",
    space={"activation": Choice(["relu", "tanh"]), "lr": LogUniform(1e-4, 1e-2)},
    storage_path="/r",
)
TRIAL = {"activation": "relu", "augment": "crop", "batch_size": 64, "lr": 0.003, "epochs": 3}


def result(epoch, acc):
    return {"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 1.2 / epoch, "val_acc": acc,
            "epoch_seconds": 1.0, "images_per_s": 100.0, "lr": 0.003, "diverged": False,
            "node_id": "abc123", "hostname": "h"}  # fmt: skip


SCORE = {"relu": 0.95, "tanh": 0.6}  # the activation decides the metric


def run_trials(tracker: Tracker, n: int):
    rng = random.Random(1)
    records, histories = [], {}
    for i in range(n):
        trial_id = f"t_{i:05d}"
        activation = ["relu", "tanh"][i % 2]
        config = {"activation": activation, "augment": "crop", "batch_size": 64,
                  "lr": 10 ** rng.uniform(-4, -2), "epochs": 3}  # fmt: skip
        acc = SCORE[activation] + rng.gauss(0, 0.01)
        epochs = 3 if i < n - 2 else 1  # the last two stopped early
        tracker.trial_started(trial_id, config)
        history = [{**result(e, acc), "epoch_seconds": 1.0 + i} for e in range(1, epochs + 1)]
        for h in history:
            tracker.trial_result(trial_id, h)
        tracker.trial_ended(trial_id, "completed" if epochs == 3 else "scheduler")
        records.append(TrialRecord(trial_id, config, history[-1]))
        histories[trial_id] = history
    summary = summarize(
        records, name="s1", epochs=3, metric="val_acc", mode="max",
        searched_keys=["activation", "lr"], wall_seconds=30.0, storage_path="/r",
        experiment_path="/r/s1",
    )  # fmt: skip
    return summary, histories
