"""What goes on the runs as files: curves, the best trial's model and confusion matrices, plots.

Curves go on every trial's run; the best trial's confusion matrices and model on its run; the
search's comparison plots and the trials CSV on the parent run.

A trial's curves are logged when it ends, from the epochs this driver saw, so the end of the
search need not draw them all at once. The end of the search logs the curves still missing from
Ray's complete histories (which survive a driver restart): a resumed search gets every curve.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tune.logs import get_logger
from tune.summary import Summary
from tune.tracking.plots import (
    plot_augmentation_grid,
    plot_confusion_matrix,
    plot_heatmap,
    plot_learning_curves,
    plot_metric_vs_lr,
    plot_parallel_coordinates,
    write_trials_csv,
)
from tune.tracking.tracker import Tracker

log = get_logger("mlflow")

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
    tracker: Tracker,
    state: dict[str, Any],
    registered_model: str | None,
    alongside: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Confusion matrices (val, and test where it exists) and the model, on the best child run.

    The model's export and upload (seconds: `torch.export` traces it) run on a second thread
    while this one runs `alongside` (the search's plots), then this one waits for them.

    Returns:
        Seconds spent: {"confusion_s", "log_model_s"}.
    """
    from trainables.config import TrialConfig
    from trainables.data import dataset_from_config
    from trainables.loop import exported_weights, predict
    from trainables.model import make_model

    t0 = time.perf_counter()
    cfg = TrialConfig.from_dict({**state["config"], "device": "cpu"})
    splits = dataset_from_config(cfg)
    model = make_model(cfg, splits.channels, splits.num_classes)
    model.load_state_dict(exported_weights(state))
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
    confusion_s = time.perf_counter() - t0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="log-model") as pool:
        assert tracker.runs is not None  # `tracker.run_id` above needed it too
        status = tracker.runs.trials[state["trial_id"]].status
        upload = pool.submit(log_model, tracker, run_id, model, splits, registered_model, status)
        if alongside is not None:
            alongside()
        log_model_s = upload.result()
    tracker.artifact_seconds += log_model_s  # added here: the other thread only measures
    return {"confusion_s": confusion_s, "log_model_s": log_model_s}


def log_model(
    tracker: Tracker,
    run_id: str,
    model: Any,
    splits: Any,
    registered_model: str | None,
    status: str | None = None,
) -> float:
    """The model with its normalization built in, as MLflow's `pt2` format; returns seconds.

    `status`: the run's terminal status as this search decided it (its trial's, in the run
    map); the run is left with it. None: read from the store.

    `pt2` (`torch.export`) over pickle: the logged model is a graph that loads with torch alone
    (no cnn-tune classes, so `mlflow models serve` works in any environment with torch) and
    runs no arbitrary code when loaded. Exporting took 4 s cold and 0.8 s after
    `warm_up_search_end`, beside the plots; it loads in 0.15-0.25 s against 0.01 s for pickle
    (BENCHMARKS.md, section 6).
    """
    import mlflow
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    from trainables.loop import channel_stats
    from trainables.model import NormalizedClassifier

    t0 = time.perf_counter()
    mean, std = channel_stats(splits.train_x)
    export = NormalizedClassifier(model, mean, std).eval()
    example = splits.val_x[:EXAMPLE_IMAGES].float().numpy() / 255.0  # (2, C, H, W) in [0, 1]
    with torch.no_grad():
        signature = infer_signature(example, export(torch.from_numpy(example)).numpy())
    # The status this search decided for the run, not the store's at this moment: its end may
    # still wait in the outbox and land during the export (another thread sends it), and
    # putting back a RUNNING read before then left the best trial's run RUNNING for good.
    status = status or tracker.client.get_run(run_id).info.status
    with fluent_store(tracker.tracking_uri), mlflow.start_run(run_id=run_id):
        info = mlflow.pytorch.log_model(
            export,
            name="model",
            signature=signature,
            input_example=example,
            registered_model_name=registered_model,
            # Stated, not left to MLflow's default (which has changed between versions).
            serialization_format="pt2",
            # Stated, not inferred: inference re-imports the model in a subprocess (seconds).
            pip_requirements=model_requirements(),
            # MLflow would tag the model with MLFLOW_TRACKING_USERNAME, a credential.
            tags={"mlflow.user": getpass.getuser()},
        )
    # start_run reopened the run; put back the status its trial earned.
    tracker.client.set_terminated(run_id, status=status)
    version = getattr(info, "registered_model_version", None)
    if registered_model and version is not None:
        tag_model_version(tracker, registered_model, str(version))
    return time.perf_counter() - t0


@contextlib.contextmanager
def fluent_store(tracking_uri: str) -> Iterator[None]:
    """MLflow's fluent API (log_model) on this store for the block only: `set_tracking_uri`
    also sets MLFLOW_TRACKING_URI in the environment, which would send a later search in the
    same process (`main()` called twice) to this one's store."""
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)  # None unsets the variable and MLflow's global


def tag_model_version(tracker: Tracker, name: str, version: str) -> None:
    """The registered version names the search that made it (the Registry page shows tags)."""
    assert tracker.runs is not None
    tags = {"search": tracker.search_name, "parent_run_id": tracker.runs.parent_run_id}
    for key, value in tags.items():
        tracker.client.set_model_version_tag(name, version, f"cnn_tune.{key}", value)


def warm_up_search_end() -> None:
    """Pay now, on a thread while Ray starts, the one-off costs of the end of a search:
    `torch.export`'s start (2.8 s here), MLflow's pytorch flavor, torchvision (2.8 s to
    import; the augmentation preview's trivialaugment reads its op table), and Optuna's
    importance with scikit-learn's forest (1 s: `tune.tracking._explain`). On failure the end
    pays them as before."""
    try:
        import mlflow.pytorch  # noqa: F401
        import optuna.importance  # noqa: F401
        import sklearn.ensemble  # noqa: F401
        import torch
        import torchvision.transforms.v2  # noqa: F401

        tiny = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.Flatten()).eval()
        dims = ({0: torch.export.Dim.AUTO},)  # dynamic batch, as MLflow exports ours
        torch.export.export(tiny, (torch.rand(2, 1, 2, 2),), dynamic_shapes=dims)
    except Exception as exc:  # an optimization only
        log.debug(f"warming up the end of the search failed: {type(exc).__name__}: {exc}")


def model_requirements() -> list[str]:
    """What loading the logged model needs: torch alone (a `pt2` graph needs no cnn-tune)."""
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}"]


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
