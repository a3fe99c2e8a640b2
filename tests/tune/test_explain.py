"""tune.explain on a real SQLite store: notes, importance, cost and the trials table."""

from __future__ import annotations

import json
import random

from mlflow import MlflowClient

from tests.tune.tracking_cases import CFG, result
from tune.summary import TrialRecord, summarize
from tune.tracking import Tracker

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


def test_a_search_explains_itself_on_its_runs(store):
    from tune.explain import explain_search

    uri, folder = store
    tracker = Tracker(uri, "cnn-tune", folder)
    runs = tracker.start_search(CFG, "name: s1\n")
    summary, histories = run_trials(tracker, 8)
    tracker.send_inline()
    explained = explain_search(tracker, CFG, summary, histories)
    tracker.send_inline()
    client = MlflowClient(uri)
    parent = client.get_run(runs.parent_run_id)

    assert list(explained["importance"])[0] == "activation"
    assert parent.data.metrics["importance_activation"] > parent.data.metrics["importance_lr"]
    files = {a.path for a in client.list_artifacts(runs.parent_run_id, "plots")}
    assert {"plots/param_importance.png", "plots/accuracy_vs_cost.png"} <= files
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("**Search `s1`** ended: 8 trials") and "**What mattered**" in note

    # Cheapest trial first; a relu trial (the better ones) is on the front.
    pareto = explained["pareto"]
    assert pareto[0] == "t_00000" and all(int(t[-1]) % 2 == 0 for t in pareto)
    for trial_id, trial in runs.trials.items():
        child = client.get_run(trial.run_id)
        assert (child.data.tags.get("cnn_tune.pareto") == "true") == (trial_id in pareto)
        assert child.data.tags["mlflow.note.content"].startswith(f"Trial `{trial_id}`")

    table_file = client.download_artifacts(runs.parent_run_id, "trials_table.json")
    with open(table_file) as f:
        table = json.load(f)
    assert len(table["data"]) == 8
    assert {"trial_id", "activation", "lr", "val_acc", "train_seconds", "pareto"} <= set(
        table["columns"]
    )
    logged = json.loads(parent.data.tags["mlflow.loggedArtifacts"])
    assert {"path": "trials_table.json", "type": "table"} in logged


def test_below_six_trials_importance_is_left_out_and_said(store):
    from tune.explain import explain_search

    uri, folder = store
    tracker = Tracker(uri, "cnn-tune", folder)
    runs = tracker.start_search(CFG, "name: s1\n")
    summary, histories = run_trials(tracker, 5)
    explain_search(tracker, CFG, summary, histories)
    tracker.send_inline()
    client = MlflowClient(uri)
    parent = client.get_run(runs.parent_run_id)
    assert not [k for k in parent.data.metrics if k.startswith("importance_")]
    files = {a.path for a in client.list_artifacts(runs.parent_run_id, "plots")}
    assert "plots/param_importance.png" not in files and "plots/accuracy_vs_cost.png" in files
    assert "not estimated; fewer than 6 trials" in parent.data.tags["mlflow.note.content"]
