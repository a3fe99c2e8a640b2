"""tune.tracking._explain on a real SQLite store: notes, importance, cost and the trials table."""

from __future__ import annotations

import json

from mlflow import MlflowClient

from tests.tracking_cases import CFG, run_trials
from tune.tracking.tracker import Tracker


def test_a_search_explains_itself_on_its_runs(store):
    from tune.tracking._explain import explain_search

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
    from tune.tracking._explain import explain_search

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
