"""tune.tracking.report: a search's summary rebuilt from MLflow, ranked as the search ranked it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from mlflow import MlflowClient

from tests.tracking_cases import CFG, TRIAL, result
from tune.config.schema import SearchSettings
from tune.tracking.report import ReportError, load_report
from tune.tracking.tracker import TAG, Tracker


def logged_search(uri: str, folder: str, experiment: str, cfg=CFG) -> Tracker:
    """Three finished trials: 'a' has the best val_acc, 'b' the lowest val_loss."""
    tracker = Tracker(uri, experiment, folder)
    tracker.start_search(cfg, "name: s1\n")
    for trial_id, acc, loss in (("a", 0.9, 0.5), ("b", 0.8, 0.2), ("c", 0.7, 0.9)):
        tracker.trial_started(trial_id, TRIAL)
        for epoch in (1, 2, 3):
            tracker.trial_result(trial_id, {**result(epoch, acc), "val_loss": loss})
        tracker.trial_ended(trial_id, "completed")
    tracker.finish_search({}, "FINISHED")
    return tracker


def test_report_ranks_by_the_searchs_metric_and_mode(shared_store):
    uri, folder, experiment = shared_store
    by_loss = replace(CFG, epochs=3, search=SearchSettings(metric="val_loss", mode="min"))
    logged_search(uri, folder, experiment, by_loss)
    summary = load_report(uri, experiment, "s1")
    assert (summary.metric, summary.mode) == ("val_loss", "min")
    assert summary.best["trial_id"] == "b"  # by val_acc/max it would be "a"
    assert summary.best["val_loss"] == 0.2
    assert summary.searched_keys == ["activation", "lr"]
    assert summary.counts["finished"] == 3
    assert summary.mlflow["status"] == "FINISHED"


def test_report_of_a_search_logged_before_the_tags(shared_store):
    uri, folder, experiment = shared_store
    tracker = logged_search(uri, folder, experiment, replace(CFG, epochs=3))
    client = MlflowClient(uri)
    for key in ("metric", "mode", "searched_keys", "epochs"):
        client.delete_tag(tracker.runs.parent_run_id, f"{TAG}{key}")
    summary = load_report(uri, experiment, "s1")
    assert (summary.metric, summary.mode, summary.best["trial_id"]) == ("val_acc", "max", "a")
    assert summary.searched_keys == ["activation", "augment", "batch_size", "lr"]


def test_unknown_search_or_experiment(shared_store):
    uri, folder, experiment = shared_store
    logged_search(uri, folder, experiment)
    with pytest.raises(ReportError, match="no search named 'nope'"):
        load_report(uri, experiment, "nope")
    with pytest.raises(ReportError, match="no MLflow experiment 'other'"):
        load_report(uri, "other", "s1")
