"""Shared tracking fixtures: a search config, a trial config and one epoch's result."""

from __future__ import annotations

from tune.config import SearchConfig
from tune.space import Choice, LogUniform

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
