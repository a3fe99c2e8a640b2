"""What goes on the runs as files: curves, the best trial's model and confusion matrices, plots.

Curves go on every trial's run; the best trial's confusion matrices and model on its run; the
search's comparison plots and the trials CSV on the parent run.

A trial's curves are logged when it ends, from the epochs this driver saw, so the end of the
search need not draw them all at once. The end of the search logs the curves still missing from
Ray's complete histories (which survive a driver restart): a resumed search gets every curve.
"""

from __future__ import annotations

import getpass
import os
import tempfile
import time
from typing import Any

from tune.plots import (
    plot_augmentation_grid,
    plot_confusion_matrix,
    plot_heatmap,
    plot_learning_curves,
    plot_metric_vs_lr,
    plot_parallel_coordinates,
    write_trials_csv,
)
from tune.summary import Summary
from tune.tracking import Tracker

PREVIEW_IMAGES = 8  # training images per row of the augmentation preview
EXAMPLE_IMAGES = 2  # images in the logged model's input example


def log_trial_curve(tracker: Tracker, trial_id: str, history: list[dict[str, Any]]) -> None:
    """One child run's learning curves (loss and accuracy per epoch)."""
    assert tracker.runs is not None
    if trial_id not in tracker.runs.trials or not history:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_learning_curves(
            history, os.path.join(tmp, "learning_curves.png"), f"trial {trial_id}"
        )
        tracker.log_artifacts(tracker.run_id(trial_id), [path], "plots")
    tracker.curves_logged.add(trial_id)


def log_trial_curves(tracker: Tracker, histories: dict[str, list[dict[str, Any]]]) -> None:
    """Curves for every trial whose curves were not logged when it ended."""
    for trial_id, history in histories.items():
        if trial_id not in tracker.curves_logged:
            log_trial_curve(tracker, trial_id, history)


def log_best_model(
    tracker: Tracker, state: dict[str, Any], registered_model: str | None
) -> dict[str, float]:
    """Confusion matrices (val, and test where it exists) and the model, on the best child run.

    Returns:
        Seconds spent: {"confusion_s", "log_model_s"}.
    """
    import mlflow
    import mlflow.pytorch
    from mlflow.models import infer_signature

    from trainables.config import TrialConfig
    from trainables.data import dataset_from_config
    from trainables.loop import channel_stats, predict
    from trainables.model import NormalizedClassifier, make_model

    t0 = time.perf_counter()
    cfg = TrialConfig.from_dict({**state["config"], "device": "cpu"})
    splits = dataset_from_config(cfg)
    model = make_model(cfg, splits.channels, splits.num_classes)
    model.load_state_dict(state["model"])
    model.eval()
    run_id = tracker.run_id(state["trial_id"])
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for split, y in (("val", splits.val_y), ("test", splits.test_y)):
            if y is None:
                continue
            pred = predict(model, splits, cfg, split)
            paths.append(
                plot_confusion_matrix(
                    y.tolist(), pred.tolist(), splits.classes,
                    os.path.join(tmp, f"confusion_{split}.png"), f"best trial, {split}",
                )
            )  # fmt: skip
        tracker.log_artifacts(run_id, paths, "plots")
    t1 = time.perf_counter()

    mean, std = channel_stats(splits.train_x)
    export = NormalizedClassifier(model, mean, std).eval()
    example = splits.val_x[:EXAMPLE_IMAGES].float().numpy() / 255.0  # (2, C, H, W) in [0, 1]
    import torch

    with torch.no_grad():
        signature = infer_signature(example, export(torch.from_numpy(example)).numpy())
    mlflow.set_tracking_uri(tracker.tracking_uri)
    status = tracker.client.get_run(run_id).info.status
    with mlflow.start_run(run_id=run_id):
        mlflow.pytorch.log_model(
            export,
            name="model",
            signature=signature,
            input_example=example,
            registered_model_name=registered_model,
            # Stated, not inferred: inference re-imports the model in a subprocess (seconds).
            pip_requirements=model_requirements(),
            # MLflow would tag the model with MLFLOW_TRACKING_USERNAME, a credential.
            tags={"mlflow.user": getpass.getuser()},
        )
    # start_run reopened the run; put back the status its trial earned.
    tracker.client.set_terminated(run_id, status=status)
    t2 = time.perf_counter()
    tracker.artifact_seconds += t2 - t1  # log_artifacts counted the confusion matrices
    return {"confusion_s": t1 - t0, "log_model_s": t2 - t1}


def model_requirements() -> list[str]:
    """What loading the logged model needs: torch, and this package for the model's classes."""
    from importlib import metadata

    import torch

    try:
        ours = f"cnn-tune=={metadata.version('cnn-tune')}"
    except metadata.PackageNotFoundError:
        ours = "cnn-tune"
    return [f"torch=={torch.__version__.split('+')[0]}", ours]


def log_search_plots(tracker: Tracker, summary: Summary, cfg: Any) -> None:
    """Parent run: parallel coordinates, activation x augmentation heatmap, metric vs lr,
    an augmentation preview on real training images, and a CSV of all trials."""
    import torch

    from trainables.augment import POLICIES
    from trainables.config import TrialConfig
    from trainables.data import dataset_from_config

    assert tracker.runs is not None
    metric, mode = summary.metric, summary.mode
    rows = [{**row, metric: row.get(metric)} for row in summary.trials]
    # Rows carry only the searched keys; fixed ones (e.g. a single lr) come from the config.
    fixed = cfg.fixed_trial_config()
    for row in rows:
        row["config"] = {**fixed, **row["config"]}
    with tempfile.TemporaryDirectory() as tmp:
        paths = [
            write_trials_csv(
                summary.trials, summary.searched_keys, os.path.join(tmp, "trials.csv")
            ),
        ]
        plottable = [r for r in rows if r.get(metric) is not None]
        if plottable:
            out = {
                name: os.path.join(tmp, f"{name}.png")
                for name in ("parallel_coordinates", "heatmap_activation_augment", "metric_vs_lr")
            }
            paths += [
                plot_parallel_coordinates(
                    plottable, summary.searched_keys, metric, out["parallel_coordinates"]
                ),
                plot_heatmap(plottable, metric, mode, out["heatmap_activation_augment"]),
                plot_metric_vs_lr(plottable, metric, out["metric_vs_lr"]),
            ]  # fmt: skip
        splits = dataset_from_config(TrialConfig.from_dict(fixed))
        # Spread over the train split: some datasets (mnist5k, ImageFolder) are sorted by class.
        picks = torch.linspace(0, len(splits.train_y) - 1, PREVIEW_IMAGES).long()
        paths.append(
            plot_augmentation_grid(
                splits.train_x[picks], POLICIES, os.path.join(tmp, "augmentations.png")
            )
        )
        tracker.log_artifacts(tracker.runs.parent_run_id, paths, "plots")
