"""tune.tracking.runs without Ray: the best model logged once, retried when it failed, never
fatal; every trial the summary counts has its run."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from mlflow import MlflowClient

from tests.tracking_cases import CFG, TRIAL, result
from tune.outcomes import FitOutcome, TrialRecord
from tune.tracking import artifacts
from tune.tracking.runs import log_best_model_once, settle_runs
from tune.tracking.tracker import Tracker


class Checkpoint:
    """A Ray checkpoint stand-in whose folder holds `state` (or is torn: `broken`)."""

    def __init__(self, tmp_path, broken: bool = False) -> None:
        self.folder, self.broken = tmp_path, broken

    def as_directory(self):
        import contextlib

        import torch

        from trainables.ray_trainable import CHECKPOINT_FILE

        if not self.broken:
            torch.save({"config": TRIAL, "model": {}}, self.folder / CHECKPOINT_FILE)
        else:
            (self.folder / CHECKPOINT_FILE).write_bytes(b"torn")
        return contextlib.nullcontext(str(self.folder))


@pytest.fixture
def search_settings():
    return SimpleNamespace()


@pytest.fixture
def search(search_settings, shared_store, tmp_path, monkeypatch):
    uri, folder, experiment = shared_store
    tracker = Tracker(uri, experiment, folder)
    tracker.start_search(CFG, "name: s1\n")
    tracker.trial_started("best", TRIAL)
    calls: list[str] = []
    fail_first = getattr(search_settings, "fail_first", False)

    def log_model(tracker, state, registered, alongside=None):
        calls.append(state["trial_id"])
        if alongside is not None:
            alongside()
        if len(calls) == 1 and fail_first:
            raise ConnectionError("store down at the end")
        return {"log_model_s": 0.1, "confusion_s": 0.1}

    monkeypatch.setattr(artifacts, "log_best_model", log_model)
    summary = SimpleNamespace(best={"trial_id": "best", "val_acc": 0.9})
    outcome = FitOutcome(records=[], checkpoints={"best": Checkpoint(tmp_path)})
    return tracker, summary, outcome, calls


def test_the_best_model_is_logged_once(search):
    tracker, summary, outcome, calls = search
    log_best_model_once(tracker, CFG, summary, outcome)
    log_best_model_once(tracker, CFG, summary, outcome)  # a resume, a cron rerun
    assert calls == ["best"]
    assert tracker.runs.model_of == "best"
    again = Tracker(tracker.tracking_uri, tracker.experiment, tracker.state_dir)
    again.start_search(CFG, "")  # a new driver reads it from the run map
    log_best_model_once(again, CFG, summary, outcome)
    assert calls == ["best"]


@pytest.mark.parametrize("search_settings", [SimpleNamespace(fail_first=True)])
def test_a_failed_model_logging_is_retried_next_time(search, caplog):
    tracker, summary, outcome, calls = search
    log_best_model_once(tracker, CFG, summary, outcome)
    assert tracker.runs.model_of is None and "logging the best model failed" in caplog.text
    log_best_model_once(tracker, CFG, summary, outcome)
    assert calls == ["best", "best"] and tracker.runs.model_of == "best"


def test_a_missing_or_torn_checkpoint_is_a_warning(search, tmp_path, caplog):
    tracker, summary, outcome, calls = search
    log_best_model_once(tracker, CFG, summary, FitOutcome(records=[], checkpoints={}))
    outcome.checkpoints["best"] = Checkpoint(tmp_path, broken=True)
    log_best_model_once(tracker, CFG, summary, outcome)
    assert calls == [] and tracker.runs.model_of is None
    assert "no checkpoint of the best trial" in caplog.text
    assert "reading the best trial's checkpoint failed" in caplog.text


@pytest.mark.parametrize("search_settings", [SimpleNamespace(fail_first=True)])
def test_what_runs_alongside_runs_once_whatever_happens_to_the_model(search, tmp_path):
    tracker, summary, outcome, calls = search
    ran: list[str] = []
    log_best_model_once(tracker, CFG, summary, outcome, alongside=lambda: ran.append("failed"))
    log_best_model_once(tracker, CFG, summary, outcome, alongside=lambda: ran.append("logged"))
    log_best_model_once(tracker, CFG, summary, outcome, alongside=lambda: ran.append("again"))
    empty = FitOutcome(records=[], checkpoints={})
    log_best_model_once(tracker, CFG, summary, empty, alongside=lambda: ran.append("none"))
    assert ran == ["failed", "logged", "again", "none"]
    assert calls == ["best", "best"]


def test_a_trial_that_reported_unseen_gets_its_run_with_rays_epochs(shared_store, caplog):
    # The summary counts every trial that reported; MLflow must show each of them too, even
    # one whose start this driver never saw.
    uri, folder, experiment = shared_store
    tracker = Tracker(uri, experiment, folder)
    tracker.start_search(CFG, "name: s1\n")
    tracker.trial_started("seen", TRIAL)
    tracker.trial_result("seen", result(1, 0.3))
    history = [result(1, 0.4), result(2, 0.5)]
    outcome = FitOutcome(
        records=[
            TrialRecord("seen", TRIAL, result(1, 0.3)),
            TrialRecord("unseen", {**TRIAL, "activation": "tanh"}, history[-1]),
            TrialRecord("never-started", TRIAL, {}),  # a pending proposal: not a trial
        ],
        histories={"unseen": history},
        statuses={"seen": "TERMINATED", "unseen": "TERMINATED", "never-started": "PENDING"},
        planned=3,
    )
    end = settle_runs(tracker, CFG, outcome)
    tracker.send_inline()

    assert end.started == {"seen", "unseen"}
    assert set(tracker.runs.trials) == {"seen", "unseen"}
    assert "trial unseen ran without a run of its own in MLflow" in caplog.text
    client = MlflowClient(uri)
    run = client.get_run(tracker.run_id("unseen"))
    assert run.data.params["activation"] == "tanh"
    assert run.data.tags["mlflow.parentRunId"] == tracker.runs.parent_run_id
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")] == [1, 2]
    assert run.info.status != "RUNNING"  # ended as Ray saw it, like every other child
