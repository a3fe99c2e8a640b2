"""tune.tracking.tracker without Ray: runs, batching, de-duplication and reattaching from the run
map."""

import os
from dataclasses import replace

import pytest
from mlflow import MlflowClient

from tests.tracking_cases import CFG, TRIAL, result
from tune.config.schema import SearchSettings
from tune.paths import artifact_location
from tune.tracking.run_map import RUN_MAP_FILE, RunMap
from tune.tracking.store import TrackingUnreachable, probe_tracking
from tune.tracking.tracker import Tracker, run_name


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
    # What a report needs to rank the trials as the search did.
    assert parent.data.tags["cnn_tune.metric"] == "val_acc"
    assert parent.data.tags["cnn_tune.mode"] == "max"
    assert parent.data.tags["cnn_tune.searched_keys"] == "activation,lr"
    assert [a.path for a in client.list_artifacts(runs.parent_run_id)] == ["search_config.yaml"]
    child = client.get_run(run_id)
    assert child.info.run_name == "relu-crop-bs64-lr3.0e-03"
    assert child.data.tags["mlflow.parentRunId"] == runs.parent_run_id
    assert child.data.tags["cnn_tune.node"] == "abc123"
    assert child.data.tags["cnn_tune.stop_reason"] == "scheduler"
    assert child.info.status == "FINISHED"  # stopped early is a normal end, not the failure icon
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


def test_run_name_keeps_the_headline_format():
    assert run_name({"activation": "tanh", "augment": "none", "batch_size": 8, "lr": 1e-4}) == (
        "tanh-none-bs8-lr1.0e-04"
    )


def test_unreachable_server_fails_fast():
    with pytest.raises(TrackingUnreachable, match="cannot reach the MLflow tracking server"):
        probe_tracking("http://127.0.0.1:9")


def test_a_retried_errored_trial_sheds_its_error(store):
    uri, folder = store
    tracker = Tracker(uri, "cnn-tune", folder)
    tracker.start_search(CFG, "x: 1\n")
    run_id = tracker.trial_started("t", TRIAL)
    tracker.trial_ended("t", "error", "ValueError: boom")
    client = MlflowClient(uri)
    assert client.get_run(run_id).data.tags["cnn_tune.error"] == "ValueError: boom"
    tracker.trial_started("t", TRIAL)  # resume --retry-errored
    tracker.trial_result("t", result(1, 0.5))
    tracker.trial_ended("t", "completed")
    run = client.get_run(run_id)
    assert "cnn_tune.error" not in run.data.tags
    assert run.data.tags["cnn_tune.stop_reason"] == "completed" and run.info.status == "FINISHED"


def test_local_faults_at_start_are_bad_input_not_unreachable(store):
    from tune.errors import BadInput

    uri, folder = store
    with open(f"{folder}/{RUN_MAP_FILE}", "w") as f:
        f.write("{ torn")
    with pytest.raises(BadInput, match="run map .* is unreadable") as info:
        Tracker(uri, "cnn-tune", folder).start_search(CFG, "x: 1\n")
    assert not isinstance(info.value, TrackingUnreachable)


def test_resource_figures_go_under_system_and_the_visible_gpus_become_a_tag(store):
    uri, folder = store
    tracker = Tracker(uri, "cnn-tune", folder)
    tracker.start_search(CFG, "name: s1\n")
    run_id = tracker.trial_started("t_00000", TRIAL)
    usage = {"system/peak_rss_mib": 900.0, "system/gpu_max_allocated_mib": 843.0}
    tracker.trial_result("t_00000", {**result(1, 0.5), **usage, "cuda_visible_devices": "0"})
    tracker.trial_result("t_00000", {**result(2, 0.6), "system/peak_rss_mib": 950.0})
    client = MlflowClient(uri)
    child = client.get_run(run_id)
    assert child.data.tags["cnn_tune.cuda_visible_devices"] == "0"
    assert child.data.metrics["system/gpu_max_allocated_mib"] == 843.0
    history = client.get_metric_history(run_id, "system/peak_rss_mib")
    assert [(m.step, m.value) for m in history] == [(1, 900.0), (2, 950.0)]
    assert "cuda_visible_devices" not in child.data.metrics


INPUTS = [
    {"name": f"mnist5k/{split}", "digest": "ab" * 16, "source_type": "local",
     "source": '{"uri": "mnist5k"}', "profile": f'{{"num_rows": {n}}}', "context": context}
    for split, n, context in (("train", 4000, "training"), ("val", 500, "validation"))
]  # fmt: skip


def test_runs_carry_mlflow_conventions_the_search_tag_and_dataset_inputs(store):
    uri, folder = store
    tracker = Tracker(uri, "cnn-tune", folder)
    runs = tracker.start_search(CFG, "name: s1\n", INPUTS)
    run_id = tracker.trial_started("t_00000", TRIAL)
    tracker.trial_ended("t_00000", "completed")
    tracker.send_inline()
    client = MlflowClient(uri)
    parent, child = client.get_run(runs.parent_run_id), client.get_run(run_id)
    for run in (parent, child):
        tags = run.data.tags
        assert tags["mlflow.user"] and tags["mlflow.source.type"] == "LOCAL"
        assert tags["mlflow.source.name"].startswith("cnn-tune")
        assert tags["mlflow.source.git.commit"] == parent.data.tags["cnn_tune.git_commit"]
        inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
        assert set(inputs) == {"mnist5k/train", "mnist5k/val"}
        assert inputs["mnist5k/train"].dataset.digest == "ab" * 16
        assert {t.key: t.value for t in inputs["mnist5k/val"].tags} == {
            "mlflow.data.context": "validation"
        }
        assert '"num_rows": 500' in inputs["mnist5k/val"].dataset.profile
    assert parent.data.tags["mlflow.note.content"].startswith("**Search `s1`**: running.")
    assert child.data.tags["cnn_tune.search"] == "s1"
    found = client.search_runs([runs.experiment_id], filter_string="tags.`cnn_tune.search` = 's1'")
    assert [r.info.run_id for r in found] == [run_id]


def test_best_metric_is_the_best_epoch_so_far_per_mode(store):
    uri, folder = store
    tracker = Tracker(uri, "cnn-tune", folder)
    tracker.start_search(CFG, "name: s1\n")
    run_id = tracker.trial_started("t_00000", TRIAL)
    for epoch, acc in ((1, 0.5), (2, 0.8), (3, 0.7)):
        tracker.trial_result("t_00000", result(epoch, acc))
    tracker.send_inline()
    client = MlflowClient(uri)
    assert client.get_run(run_id).data.metrics["val_acc"] == 0.7  # the last, in the UI's table
    assert client.get_run(run_id).data.metrics["best_val_acc"] == 0.8
    assert [m.value for m in client.get_metric_history(run_id, "best_val_acc")] == [0.5, 0.8, 0.8]
    # A loss is minimized: its best is the lowest.
    os.makedirs(f"{folder}-min")
    low = Tracker(uri, "cnn-tune", f"{folder}-min")
    low.start_search(
        replace(CFG, name="s2", search=SearchSettings(metric="val_loss", mode="min")), ""
    )
    loss_run = low.trial_started("t_00000", TRIAL)
    for epoch, acc in ((1, 0.5), (2, 0.8), (3, 0.7)):
        low.trial_result("t_00000", {**result(epoch, acc), "val_loss": [0.9, 0.4, 0.6][epoch - 1]})
    low.send_inline()
    assert client.get_run(loss_run).data.metrics["best_val_loss"] == 0.4


def test_an_interrupted_run_whose_trial_ray_saw_end_is_ended_as_ray_saw_it(store):
    # A stop that came as the trial finished: the run was ended `interrupted` (KILLED), but
    # Ray's saved state says TERMINATED, so the resume does not run it again.
    from tune.outcomes import FitOutcome, TrialRecord
    from tune.tracking.runs import _end_children_as_ray_saw

    uri, folder = store
    tracker = Tracker(uri, "cnn-tune", folder)
    tracker.start_search(CFG, "name: s1\n")
    run_id = tracker.trial_started("t_00000", TRIAL)
    tracker.trial_result("t_00000", result(CFG.epochs, 0.8))
    tracker.trial_ended("t_00000", "interrupted")
    tracker.send_inline()
    assert MlflowClient(uri).get_run(run_id).info.status == "KILLED"
    last = {"epoch": CFG.epochs, "val_acc": 0.8}
    outcome = FitOutcome([TrialRecord("t_00000", {}, last)], statuses={"t_00000": "TERMINATED"})
    _end_children_as_ray_saw(tracker, outcome, CFG)
    tracker.send_inline()
    run = MlflowClient(uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["cnn_tune.stop_reason"] == "completed"
