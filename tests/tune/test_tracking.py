"""tune.tracking without Ray: runs, batching, de-duplication and reattaching from the run map."""

from types import SimpleNamespace

import pytest
from mlflow import MlflowClient

from tune.tracking import (
    RUN_MAP_FILE,
    RunMap,
    Tracker,
    TrackingUnreachable,
    artifact_location,
    probe_tracking,
    run_name,
    stop_reason,
)

CFG = SimpleNamespace(
    name="s1",
    dataset="mnist5k",
    storage_path="/r",
    search=SimpleNamespace(algorithm="random", scheduler="asha"),
)
TRIAL = {"activation": "relu", "augment": "crop", "batch_size": 64, "lr": 0.003, "epochs": 3}


def result(epoch, acc):
    return {"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 1.2 / epoch, "val_acc": acc,
            "epoch_seconds": 1.0, "images_per_s": 100.0, "lr": 0.003, "diverged": False,
            "node_id": "abc123", "hostname": "h"}  # fmt: skip


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    folder = tmp_path / "exp"
    folder.mkdir()
    return uri, str(folder)


def test_parent_and_child_runs(store):
    uri, folder = store
    tracker = Tracker(uri, "cnn-tune", folder)
    runs = tracker.start_search(CFG, "name: s1\n")
    run_id = tracker.trial_started("t_00000", TRIAL)
    tracker.trial_result("t_00000", result(1, 0.5))
    tracker.trial_ended("t_00000", "scheduler")

    client = MlflowClient(uri)
    parent = client.get_run(runs.parent_run_id)
    assert parent.info.run_name == "s1"
    assert parent.data.tags["cnn_tune.role"] == "search"
    assert parent.data.tags["cnn_tune.algorithm"] == "random"
    assert [a.path for a in client.list_artifacts(runs.parent_run_id)] == ["search_config.yaml"]
    child = client.get_run(run_id)
    assert child.info.run_name == "relu-crop-bs64-lr3.0e-03"
    assert child.data.tags["mlflow.parentRunId"] == runs.parent_run_id
    assert child.data.tags["cnn_tune.node"] == "abc123"
    assert child.data.tags["cnn_tune.stop_reason"] == "scheduler"
    assert child.info.status == "KILLED"
    assert child.data.params["activation"] == "relu"
    assert child.data.params["width"] == "32"  # the full resolved trial config
    assert child.data.metrics["val_acc"] == 0.5
    # sqlite artifacts live beside the database, as an absolute path
    assert parent.info.artifact_uri.startswith(artifact_location(uri))


def test_restored_trial_reattaches_without_duplicate_points(store):
    uri, folder = store
    first = Tracker(uri, "cnn-tune", folder)
    runs = first.start_search(CFG, "name: s1\n")
    run_id = first.trial_started("t_00000", TRIAL)
    first.trial_result("t_00000", result(1, 0.5))
    first.trial_result("t_00000", result(2, 0.6))

    # A new driver (resume): same map file, same runs; epoch 2 is re-run and reported again.
    second = Tracker(uri, "cnn-tune", folder)
    assert second.start_search(CFG, "name: s1\n").parent_run_id == runs.parent_run_id
    assert second.trial_started("t_00000", TRIAL) == run_id
    second.trial_result("t_00000", result(2, 0.61))
    second.trial_result("t_00000", result(3, 0.7))
    second.trial_ended("t_00000", "completed")

    client = MlflowClient(uri)
    history = client.get_metric_history(run_id, "val_acc")
    assert sorted(m.step for m in history) == [1, 2, 3]
    assert {m.step: m.value for m in history}[2] == 0.6
    exp = client.get_experiment_by_name("cnn-tune")
    assert len(client.search_runs([exp.experiment_id])) == 2  # one parent, one child
    assert client.get_run(run_id).info.status == "FINISHED"
    saved = RunMap.load(f"{folder}/{RUN_MAP_FILE}")
    assert saved.trials["t_00000"].last_step == 3


def test_close_open_trials_leaves_nothing_running(store):
    uri, folder = store
    tracker = Tracker(uri, "cnn-tune", folder)
    tracker.start_search(CFG, "x: 1\n")
    a = tracker.trial_started("a", TRIAL)
    b = tracker.trial_started("b", {**TRIAL, "activation": "tanh"})
    tracker.trial_ended("a", "diverged")
    tracker.close_open_trials()
    client = MlflowClient(uri)
    assert client.get_run(a).info.status == "FAILED"
    assert client.get_run(b).info.status == "KILLED"
    assert client.get_run(b).data.tags["cnn_tune.stop_reason"] == "interrupted"


def test_stop_reasons():
    assert stop_reason({"epoch": 3}, 3, False) == "completed"
    assert stop_reason({"epoch": 1}, 3, False) == "scheduler"
    assert stop_reason({"epoch": 1}, 3, True) == "budget"
    assert stop_reason({"epoch": 3, "diverged": True}, 3, False) == "diverged"
    assert run_name({"activation": "tanh", "augment": "none", "batch_size": 8, "lr": 1e-4}) == (
        "tanh-none-bs8-lr1.0e-04"
    )


def test_unreachable_server_fails_fast():
    with pytest.raises(TrackingUnreachable, match="cannot reach the MLflow tracking server"):
        probe_tracking("http://127.0.0.1:9")


def test_curves_are_logged_when_a_trial_ends_and_the_rest_at_the_end(store, monkeypatch):
    from tune import artifacts
    from tune.tracking import make_callback

    uri, folder = store
    tracker = Tracker(uri, "cnn-tune", folder)
    tracker.start_search(CFG, "name: s1\n")
    callback = make_callback(tracker, epochs=3, time_budget_s=None)
    seen = SimpleNamespace(trial_id="seen", config=TRIAL, last_result={})
    # A trial restored by this driver from epoch 1: it did not see epoch 1 itself.
    restored = SimpleNamespace(trial_id="restored", config=TRIAL, last_result={})
    for trial, epochs in ((seen, [1, 2, 3, 2, 3]), (restored, [2, 3])):  # a retry re-runs 2, 3
        callback.on_trial_start(0, [], trial)
        for epoch in epochs:
            callback.on_trial_result(0, [], trial, result(epoch, 0.1 * epoch))
        callback.on_trial_complete(0, [], trial)

    client = MlflowClient(uri)
    curves = "plots/learning_curves.png"
    seen_run, restored_run = tracker.run_id("seen"), tracker.run_id("restored")
    assert [a.path for a in client.list_artifacts(seen_run, "plots")] == [curves]
    assert client.list_artifacts(restored_run, "plots") == []  # epoch 1 unseen: left to the end
    assert tracker.curves_logged == {"seen"}

    drawn, draw = [], artifacts.plot_learning_curves

    def counted(history, path, title):
        drawn.append(title)
        return draw(history, path, title)

    monkeypatch.setattr(artifacts, "plot_learning_curves", counted)
    histories = {t: [result(e, 0.1 * e) for e in (1, 2, 3)] for t in ("seen", "restored")}
    artifacts.log_trial_curves(tracker, histories)
    assert drawn == ["trial restored"]  # the one logged when it ended is not drawn again
    assert [a.path for a in client.list_artifacts(restored_run, "plots")] == [curves]
