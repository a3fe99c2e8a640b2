"""tune.tracking.plots: every figure is written as a real PNG from plain data."""

import csv

import numpy as np
import pytest
import torch

from trainables.augment import POLICIES
from tune.tracking import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

CASES = [
    ("finished", 0.9, "relu", "crop", 64, 1e-3),
    ("stopped_early", 0.5, "tanh", "none", 128, 3e-4),
    ("diverged", None, "sigmoid", "crop", 64, 5e-3),
    ("finished", 0.8, "relu", "none", 128, 2e-3),
]
ROWS = [
    {
        "trial_id": f"t{i}",
        "outcome": outcome,
        "epochs": 2,
        "val_acc": acc,
        "val_loss": 0.5,
        "test_acc": None,
        "error": None,
        "config": {"activation": act, "augment": aug, "batch_size": bs, "lr": lr},
    }
    for i, (outcome, acc, act, aug, bs, lr) in enumerate(CASES)
]


def assert_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC


def test_learning_curves(tmp_path):
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "val_acc": 0.5 + e / 10}
        for e in (1, 2, 3)
    ]
    assert_png(plots.plot_learning_curves(history, str(tmp_path / "c.png"), "t0"))


def test_confusion_counts_and_plot(tmp_path):
    counts = plots.confusion_counts([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert_png(
        plots.plot_confusion_matrix(
            [0, 1, 2], [0, 2, 2], ["a", "b", "c"], str(tmp_path / "m.png"), "val"
        )
    )


@pytest.mark.parametrize("name", ["parallel", "heatmap", "lr"])
def test_search_plots_skip_missing_metrics(tmp_path, name):
    path = str(tmp_path / f"{name}.png")
    if name == "parallel":
        plots.plot_parallel_coordinates(
            ROWS, ["activation", "augment", "batch_size", "lr"], "val_acc", path
        )
    elif name == "heatmap":
        plots.plot_heatmap(ROWS, "val_acc", "max", path)
    else:
        plots.plot_metric_vs_lr(ROWS, "val_acc", path)
    assert_png(path)


def test_augmentation_grid(tmp_path):
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    assert_png(plots.plot_augmentation_grid(images, POLICIES, str(tmp_path / "a.png")))


@pytest.mark.parametrize("channels", [1, 3])
def test_the_mosaic_holds_policy_i_on_image_j_in_tile_i_j(channels):
    images = torch.randint(0, 256, (3, channels, 10, 12), dtype=torch.uint8)
    chosen = {name: POLICIES[name] for name in ("none", "flip", "crop")}
    mosaic = plots.augmentation_mosaic(images, chosen, seed=5)
    gap = plots.MOSAIC_GAP
    assert mosaic.shape == (3 * 10 + 2 * gap, 3 * 12 + 2 * gap, channels)
    for i, policy in enumerate(chosen.values()):
        out = policy(images.clone(), torch.Generator().manual_seed(5))
        for j in range(3):
            tile = mosaic[
                i * (10 + gap) : i * (10 + gap) + 10, j * (12 + gap) : j * (12 + gap) + 12
            ]
            assert np.array_equal(tile, out[j].permute(1, 2, 0).numpy())
    assert (mosaic[10 : 10 + gap] == 255).all()  # the white gap between rows


def test_trials_csv(tmp_path):
    path = plots.write_trials_csv(ROWS, ["activation", "lr"], str(tmp_path / "t.csv"))
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert [r["trial_id"] for r in rows] == ["t0", "t1", "t2", "t3"]
    assert rows[2]["outcome"] == "diverged" and rows[2]["val_acc"] == ""
    assert float(rows[1]["lr"]) == pytest.approx(3e-4)
    assert np.isclose(float(rows[0]["val_acc"]), 0.9)
