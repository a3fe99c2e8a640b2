"""Figures an analyst would rather look at than read: one function per PNG, matplotlib (Agg).

Every function takes plain data (lists of dicts, tensors) and a path, writes one file and
returns its path, so plots are testable without MLflow or Ray.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: drivers and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tune.metrics import best_of, is_finite_number

DPI = 110


def _save(fig: Any, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_learning_curves(history: Sequence[dict[str, Any]], path: str, title: str) -> str:
    """Loss (train and val) and val accuracy per epoch of one trial."""
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    for key, style in (("train_loss", "-o"), ("val_loss", "-s")):
        ax_loss.plot(epochs, [h.get(key, np.nan) for h in history], style, label=key)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.legend()
    ax_acc.plot(epochs, [h.get("val_acc", np.nan) for h in history], "-o", color="tab:green")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("val_acc")
    ax_acc.set_ylim(0, 1)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    return _save(fig, path)


def confusion_counts(y_true: Sequence[int], y_pred: Sequence[int], classes: int) -> np.ndarray:
    """(classes, classes) counts: rows are true labels, columns predictions."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return counts


def plot_confusion_matrix(
    y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str], path: str, title: str
) -> str:
    """Row-normalized confusion matrix; counts are written in cells when there are few classes."""
    counts = confusion_counts(y_true, y_pred, len(classes))
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    size = min(12, 3 + 0.45 * n)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of true class")
    if n <= 20:
        ax.set_xticks(range(n), classes, rotation=60, ha="right")
        ax.set_yticks(range(n), classes)
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    color = "white" if share[i, j] > 0.5 else "black"
                    ax.text(
                        j, i, str(counts[i, j]), ha="center", va="center", fontsize=7, color=color
                    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = np.trace(counts) / max(1, counts.sum())
    ax.set_title(f"{title} (accuracy {accuracy:.3f})")
    return _save(fig, path)


def _axis_values(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[str] | None]:
    """Numeric positions for one hyperparameter; categories get evenly spaced positions."""
    values = [row["config"].get(key) for row in rows]
    if all(is_finite_number(v) for v in values):
        if key == "lr" or (min(values) > 0 and max(values) / max(min(values), 1e-12) > 50):
            return [math.log10(v) for v in values], None
        return [float(v) for v in values], None
    labels = sorted({str(v) for v in values})
    return [float(labels.index(str(v))) for v in values], labels


def plot_parallel_coordinates(
    rows: Sequence[dict[str, Any]], keys: Sequence[str], metric: str, path: str
) -> str:
    """One line per trial through its hyperparameters, coloured by its metric."""
    fig, ax = plt.subplots(figsize=(2.2 * (len(keys) + 1), 4.2))
    axes = [*keys, metric]
    columns, tick_labels = [], []
    for key in axes:
        if key == metric:
            vals = [
                row.get(metric) if is_finite_number(row.get(metric)) else np.nan for row in rows
            ]
            columns.append(vals)
            tick_labels.append(None)
        else:
            vals, labels = _axis_values(rows, key)
            columns.append(vals)
            tick_labels.append(labels)
    data = np.array(columns, dtype=float)  # (axes, trials)
    lo, hi = np.nanmin(data, axis=1, keepdims=True), np.nanmax(data, axis=1, keepdims=True)
    scaled = (data - lo) / np.where(hi - lo > 0, hi - lo, 1)
    scores = data[-1]
    good = np.isfinite(scores)
    cmap = plt.get_cmap("viridis")
    s_lo = np.nanmin(scores) if good.any() else 0
    s_hi = np.nanmax(scores) if good.any() else 1
    for t in range(data.shape[1]):
        shade = (scores[t] - s_lo) / (s_hi - s_lo) if good[t] and s_hi > s_lo else 0.0
        color = cmap(shade) if good[t] else (0.7, 0.7, 0.7, 0.6)
        ax.plot(range(len(axes)), scaled[:, t], "-o", color=color, alpha=0.85, lw=1.5, ms=3)
    for i, (key, labels) in enumerate(zip(axes, tick_labels)):
        ax.axvline(i, color="black", lw=0.6)
        if labels:
            for j, label in enumerate(labels):
                y = j / max(1, len(labels) - 1) if len(labels) > 1 else 0.5
                ax.text(i + 0.04, y, label, fontsize=7, va="center")
        else:
            top, bottom = hi[i, 0], lo[i, 0]
            fmt = (lambda v: f"1e{v:.1f}") if key == "lr" else (lambda v: f"{v:.3g}")
            ax.text(i + 0.04, 1.0, fmt(top), fontsize=7, va="bottom")
            ax.text(i + 0.04, 0.0, fmt(bottom), fontsize=7, va="top")
    ax.set_xticks(range(len(axes)), [f"log10 {k}" if k == "lr" else k for k in axes])
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(axes) - 0.6)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(s_lo, s_hi))
    fig.colorbar(sm, ax=ax, label=metric)
    ax.set_title(f"trials by hyperparameters (grey: no {metric})")
    return _save(fig, path)


def plot_heatmap(
    rows: Sequence[dict[str, Any]], metric: str, mode: str, path: str,
    row_key: str = "activation", col_key: str = "augment",
) -> str:  # fmt: skip
    """Best metric for each (activation, augmentation) pair; blank where no trial ran."""
    row_labels = sorted({str(r["config"].get(row_key)) for r in rows})
    col_labels = sorted({str(r["config"].get(col_key)) for r in rows})
    grid = np.full((len(row_labels), len(col_labels)), np.nan)
    for r in rows:
        value = r.get(metric)
        if not is_finite_number(value):
            continue
        i = row_labels.index(str(r["config"].get(row_key)))
        j = col_labels.index(str(r["config"].get(col_key)))
        grid[i, j] = value if np.isnan(grid[i, j]) else best_of(mode, (grid[i, j], value))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(col_labels), 1.2 + 0.6 * len(row_labels)))
    image = ax.imshow(grid, cmap="viridis" if mode == "max" else "viridis_r", aspect="auto")
    fig.colorbar(image, ax=ax, label=f"best {metric}")
    ax.set_xticks(range(len(col_labels)), col_labels)
    ax.set_yticks(range(len(row_labels)), row_labels)
    for i in range(len(row_labels)):
        for j in range(len(col_labels)):
            text = "-" if np.isnan(grid[i, j]) else f"{grid[i, j]:.3f}"
            ax.text(j, i, text, ha="center", va="center", color="white", fontsize=8)
    ax.set_xlabel(col_key)
    ax.set_ylabel(row_key)
    ax.set_title(f"best {metric} by {row_key} x {col_key}")
    return _save(fig, path)


def plot_metric_vs_lr(rows: Sequence[dict[str, Any]], metric: str, path: str) -> str:
    """The metric against the learning rate (log axis), one colour per activation."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    activations = sorted({str(r["config"].get("activation")) for r in rows})
    for k, act in enumerate(activations):
        pts = [
            (r["config"]["lr"], r[metric])
            for r in rows
            if str(r["config"].get("activation")) == act
            and is_finite_number(r.get(metric))
            and is_finite_number(r["config"].get("lr"))
        ]
        if pts:
            xs, ys = zip(*pts)
            ax.scatter(xs, ys, label=act, color=plt.get_cmap("tab10")(k % 10), s=36)
    ax.set_xscale("log")
    ax.set_xlabel("lr (Adam)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3, which="both")
    ax.legend(title="activation", fontsize=8)
    ax.set_title(f"{metric} against learning rate")
    return _save(fig, path)


def plot_param_importance(importance: dict[str, float], metric: str, path: str, note: str) -> str:
    """Each searched key's fANOVA importance as a horizontal bar, the largest on top.

    Args:
        note: the title's second line (which trials counted, and how).
    """
    keys = list(importance)[::-1]  # barh draws bottom-up
    fig, ax = plt.subplots(figsize=(6.5, 0.5 * len(keys) + 1.6))
    bars = ax.barh(keys, [importance[k] for k in keys], color=plt.get_cmap("tab10")(0))
    ax.bar_label(bars, fmt="%.2f", padding=3, fontsize=8)
    ax.set_xlim(0, max(1.0, *importance.values()) * 1.1)
    ax.set_xlabel(f"share of {metric}'s variance (fANOVA)")
    ax.set_title(f"Which hyperparameter mattered for {metric}\n{note}", fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


def plot_accuracy_vs_cost(
    points: Sequence[tuple[str, float, float]],
    front: Sequence[tuple[str, float, float]],
    metric: str,
    path: str,
) -> str:
    """Each trial's metric against its training seconds, the Pareto front drawn as a step line.

    Args:
        points: (trial id, seconds, value) per trial; `front` is the Pareto-optimal subset.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4))
    on_front = {p[0] for p in front}
    rest = [p for p in points if p[0] not in on_front]
    if rest:
        ax.scatter([p[1] for p in rest], [p[2] for p in rest], s=30, color="0.6", label="trial")
    if front:
        xs, ys = [p[1] for p in front], [p[2] for p in front]
        ax.step(xs, ys, where="post", color=plt.get_cmap("tab10")(3), alpha=0.7)
        ax.scatter(xs, ys, s=46, color=plt.get_cmap("tab10")(3), label="Pareto-optimal", zorder=3)
        for trial_id, x, y in front:
            ax.annotate(trial_id, (x, y), fontsize=7, xytext=(4, -10), textcoords="offset points")
    ax.set_xlabel("training seconds (sum of the trial's epochs)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{metric} against what it cost")
    return _save(fig, path)


MOSAIC_GAP = 2  # pixels of white between the tiles of the augmentation preview


def augmentation_mosaic(images: Any, policies: dict[str, Any], seed: int = 0) -> np.ndarray:
    """One uint8 (rows, cols, C) image: policy i applied to image j in tile (i, j), the tiles
    `MOSAIC_GAP` white pixels apart. Drawn as one image, not an axes per tile: 56 axes took
    0.8 s of every search's end to draw."""
    import torch

    n, c, h, w = images.shape
    step_y, step_x = h + MOSAIC_GAP, w + MOSAIC_GAP
    mosaic = np.full(
        (len(policies) * step_y - MOSAIC_GAP, n * step_x - MOSAIC_GAP, c), 255, np.uint8
    )
    for i, policy in enumerate(policies.values()):
        out = policy(images.clone(), torch.Generator().manual_seed(seed))
        for j in range(n):
            tile = out[j].permute(1, 2, 0).numpy()
            mosaic[i * step_y : i * step_y + h, j * step_x : j * step_x + w] = tile
    return mosaic


def plot_augmentation_grid(images: Any, policies: dict[str, Any], path: str, seed: int = 0) -> str:
    """Each policy (rows) applied to the same training images (columns).

    Args:
        images: uint8 tensor (N, C, H, W), a few real training images.
        policies: name -> policy function (trainables.augment.POLICIES or a subset).
    """
    n, _, h, _ = images.shape
    mosaic = augmentation_mosaic(images, policies, seed)
    fig, ax = plt.subplots(figsize=(1.1 * n + 1.4, 1.15 * len(policies)))
    gray = mosaic.shape[2] == 1
    ax.imshow(mosaic[:, :, 0] if gray else mosaic, cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([i * (h + MOSAIC_GAP) + h / 2 for i in range(len(policies))], list(policies))
    ax.tick_params(axis="y", length=0, labelsize=8)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title("augmentation policies on training images")
    return _save(fig, path)


def write_trials_csv(rows: Sequence[dict[str, Any]], keys: Sequence[str], path: str) -> str:
    """All trials, one line each: id, outcome, searched values, last metrics."""
    fields = ["trial_id", "outcome", *keys, "epochs", "val_acc", "val_loss", "test_acc", "error"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    **{k: row.get(k) for k in fields if k not in keys},
                    **{k: row["config"].get(k) for k in keys},
                }
            )
    return path
