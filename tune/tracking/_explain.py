"""A search that explains itself in the MLflow UI: notes, importance, cost and the trials table.

Logged at the end of a search, beside the other plots: the parent's description (what was
searched, how it ended, the top trials, the command for the best one), each child's short note,
parameter importance (`plots/param_importance.png`, metrics `importance_<key>`), the metric
against training time with its Pareto front (`plots/accuracy_vs_cost.png`, children tagged
`cnn_tune.pareto=true`), and the trials as an MLflow table (`trials_table.json`).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from tune.analysis import MIN_TRIALS_FOR_IMPORTANCE, param_importance, pareto_front
from tune.config.schema import SearchConfig
from tune.logs import get_logger
from tune.outcomes import STOPPED_EARLY
from tune.summary import Summary
from tune.tracking._conventions import NOTE
from tune.tracking._notes import ranks, search_note, trial_note
from tune.tracking.plots import plot_accuracy_vs_cost, plot_param_importance
from tune.tracking.tracker import TAG, Tracker

log = get_logger("mlflow")

TABLE_FILE = "trials_table.json"  # MLflow's table artifact (the UI's table view)
IMPORTANCE = "importance_"  # parent metrics importance_<key>


def train_seconds(histories: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """Trial id -> seconds its epochs took (training and evaluation), from Ray's histories."""
    return {
        trial_id: float(sum(h.get("epoch_seconds") or 0.0 for h in history))
        for trial_id, history in histories.items()
    }


def explain_search(
    tracker: Tracker,
    cfg: SearchConfig,
    summary: Summary,
    histories: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """Log the search's explanation on its runs; each part on its own, so one failing (a plot,
    an importance the forest cannot fit) leaves the others.

    Returns:
        {"importance": key -> share or None, "pareto": [trial ids]}.
    """
    assert tracker.runs is not None
    parent = tracker.runs.parent_run_id
    metric, mode = summary.metric, summary.mode
    seconds = train_seconds(histories)
    rows = [{**row, "train_seconds": seconds.get(row["trial_id"])} for row in summary.trials]
    importance = _try("parameter importance", _log_importance, tracker, cfg, rows, metric, mode)
    pareto = _try("the accuracy-cost plot", _log_cost, tracker, rows, metric, mode) or []
    _try("the trials table", _log_table, tracker, rows, summary, pareto)
    tracker.set_tags(parent, {NOTE: search_note(cfg, summary, importance, pareto)})
    rank_of, reasons = ranks(summary), tracker.reasons()
    for row in summary.trials:
        trial_id = row["trial_id"]
        if trial_id in tracker.runs.trials:
            note = trial_note(summary, row, rank_of.get(trial_id), reasons.get(trial_id))
            tracker.set_tags(tracker.run_id(trial_id), {NOTE: note})
    return {"importance": importance, "pareto": pareto}


def _try(what: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:  # a view of the results: never fails the search
        log.warning(f"logging {what} failed: {type(exc).__name__}: {exc}")
        return None


def _log_importance(
    tracker: Tracker, cfg: SearchConfig, rows: list[dict[str, Any]], metric: str, mode: str
) -> dict[str, float] | None:
    """fANOVA importance: a plot and `importance_<key>` metrics, for 6 or more scored trials."""
    assert tracker.runs is not None
    importance = param_importance(rows, cfg.space, metric, mode)
    if importance is None:
        log.info(
            f"mlflow: parameter importance not estimated (fewer than "
            f"{MIN_TRIALS_FOR_IMPORTANCE} trials reported {metric})"
        )
        return None
    scored = [r for r in rows if isinstance(r.get(metric), (int, float))]
    early = sum(1 for r in scored if r["outcome"] == STOPPED_EARLY)
    note = f"{len(scored)} trials; {early} stopped early count with their last reported value"
    parent = tracker.runs.parent_run_id
    tracker.log_metrics(parent, {f"{IMPORTANCE}{k}": v for k, v in importance.items()})
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_param_importance(
            importance, metric, os.path.join(tmp, "param_importance.png"), note
        )
        tracker.log_artifacts(parent, [path], "plots")
    return importance


def _log_cost(tracker: Tracker, rows: list[dict[str, Any]], metric: str, mode: str) -> list[str]:
    """The metric against training seconds, the Pareto front drawn and its children tagged."""
    assert tracker.runs is not None
    points = [
        (r["trial_id"], r["train_seconds"], r[metric])
        for r in rows
        if isinstance(r.get(metric), (int, float)) and r.get("train_seconds")
    ]
    if not points:
        return []
    front = pareto_front(points, mode)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "accuracy_vs_cost.png")
        path = plot_accuracy_vs_cost(points, front, metric, out)
        tracker.log_artifacts(tracker.runs.parent_run_id, [path], "plots")
    pareto = [trial_id for trial_id, _, _ in front]
    for trial_id in pareto:
        if trial_id in tracker.runs.trials:
            tracker.set_tags(tracker.run_id(trial_id), {f"{TAG}pareto": "true"})
    return pareto


def _log_table(
    tracker: Tracker, rows: list[dict[str, Any]], summary: Summary, pareto: list[str]
) -> None:
    """The trials as an MLflow table (`log_table`): the UI shows it as a table, beside the CSV."""
    assert tracker.runs is not None
    keys, metric = summary.searched_keys, summary.metric
    columns: dict[str, list[Any]] = {"trial_id": [r["trial_id"] for r in rows]}
    for key in keys:
        columns[key] = [r["config"].get(key) for r in rows]
    for column in ("outcome", "epochs", metric, "test_acc", "train_seconds"):
        columns[column] = [r.get(column) for r in rows]
    columns["pareto"] = [r["trial_id"] in pareto for r in rows]
    # Direct, not queued: MLflow writes the table's artifact and its tag together. The parent
    # run is never queued (it is made before any trial), so it exists.
    tracker.client.log_table(tracker.runs.parent_run_id, data=columns, artifact_file=TABLE_FILE)
