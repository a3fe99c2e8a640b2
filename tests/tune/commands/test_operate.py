"""`cnn-tune list`, `stop` and `delete` on experiments made by the real tracker and lock (the
stop of a real running search: tests/scenarios/test_stop.py)."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest
from mlflow import MlflowClient

from tests.tracking_cases import CFG, TRIAL, result
from tune.cli import main
from tune.config.schema import dump_search_config
from tune.lock import experiment_lock
from tune.paths import saved_config_path, state_dir
from tune.tracking.tracker import Tracker


def make_experiment(storage, name, uri, end=None, accs=(0.5, 0.7), mtime=None):
    # A copy of the shared config's mlflow section: never change the shared one.
    cfg = replace(
        CFG, name=name, storage_path=str(storage), mlflow=replace(CFG.mlflow, tracking_uri=uri)
    )
    folder = state_dir(str(storage), name)
    os.makedirs(folder, exist_ok=True)
    dump_search_config(cfg, saved_config_path(str(storage), name))
    tracker = Tracker(uri, "cnn-tune", folder)
    tracker.start_search(cfg, "x: 1\n")
    for i, acc in enumerate(accs):
        tracker.trial_started(f"t{i}", TRIAL)
        tracker.trial_result(f"t{i}", result(1, acc))
        tracker.trial_ended(f"t{i}", "completed")
    if end:
        tracker.finish_search({}, end)
    tracker.send_inline()
    if mtime:
        for path in os.listdir(folder):
            os.utime(os.path.join(folder, path), (mtime, mtime))
    return tracker


@pytest.fixture
def storage(tmp_path, blank_sqlite):
    return tmp_path / "ray_results", blank_sqlite(tmp_path / "mlruns.db")


def test_list_shows_each_state_best_first_by_last_update(storage, capsys):
    store, uri = storage
    make_experiment(store, "done", uri, "FINISHED", mtime=1_700_000_300)
    make_experiment(store, "broken", uri, "FAILED", accs=(0.2,), mtime=1_700_000_200)
    make_experiment(store, "crashed", uri, None, mtime=1_700_000_100)
    make_experiment(store, "live", uri, None, mtime=1_700_000_400)
    (store / "not-an-experiment").mkdir()
    with experiment_lock(state_dir(str(store), "live"), "live"):
        assert main(["list", "--storage-path", str(store), "--json"]) == 0
    out, err = capsys.readouterr()
    listed = json.loads(out)
    assert [e["name"] for e in listed] == ["live", "done", "broken", "crashed"]
    state = {e["name"]: e["state"] for e in listed}
    assert state == {"live": "running", "done": "finished", "broken": "failed",
                     "crashed": "interrupted"}  # fmt: skip
    done = listed[1]
    assert (done["trials_done"], done["trials_total"], done["best"]) == (2, 8, 0.7)
    assert done["dataset"] == "mnist5k" and done["metric"] == "val_acc"
    assert done["parent_run_id"] and done["tracking_uri"] == uri
    assert "4 experiments under" in err and "done" in err
    assert main(["list", "--storage-path", str(store / "nothing-here")]) == 0


def test_stop_without_a_driver_is_exit_2(storage, capsys):
    store, uri = storage
    make_experiment(store, "done", uri, "FINISHED")
    assert main(["stop", "done", "--storage-path", str(store)]) == 2
    assert "no driver is running search 'done'" in capsys.readouterr().err
    assert main(["stop", "never", "--storage-path", str(store)]) == 2


def test_delete_soft_deletes_the_runs_then_the_folder(storage, capsys):
    store, uri = storage
    tracker = make_experiment(store, "old", uri, "FINISHED")
    make_experiment(store, "kept", uri, "FINISHED")
    ids = [tracker.runs.parent_run_id, *(t.run_id for t in tracker.runs.trials.values())]
    assert main(["delete", "old", "--storage-path", str(store), "--yes"]) == 0
    client = MlflowClient(uri)
    assert {client.get_run(i).info.lifecycle_stage for i in ids} == {"deleted"}  # restorable
    assert not (store / "old").exists() and (store / "kept").exists()
    assert "3 MLflow runs deleted" in capsys.readouterr().err
    client.restore_run(ids[0])  # soft: until `mlflow gc`

    runs_before = len(client.search_runs([tracker.runs.experiment_id]))
    assert main(["delete", "kept", "--storage-path", str(store), "--yes", "--keep-runs"]) == 0
    assert not (store / "kept").exists()
    assert len(client.search_runs([tracker.runs.experiment_id])) == runs_before


def test_delete_refuses_while_held_without_a_terminal_or_without_mlflow(storage, capsys):
    store, uri = storage
    make_experiment(store, "s", uri, "FINISHED")
    with experiment_lock(state_dir(str(store), "s"), "s"):
        assert main(["delete", "s", "--storage-path", str(store), "--yes"]) == 4
    # pytest's stdin is no terminal: without --yes there is no one to ask.
    assert main(["delete", "s", "--storage-path", str(store)]) == 2
    assert "pass --yes" in capsys.readouterr().err
    # MLflow unreachable: exit 3 and nothing deleted.
    saved = saved_config_path(str(store), "s")
    text = open(saved).read().replace(uri, "http://127.0.0.1:9")
    with open(saved, "w") as f:
        f.write(text)
    assert main(["delete", "s", "--storage-path", str(store), "--yes"]) == 3
    assert (store / "s").exists()
    assert main(["delete", "nope", "--storage-path", str(store), "--yes"]) == 2


def test_remote_storage_is_listed_and_deleted_from_this_hosts_state(
    tmp_path, monkeypatch, capsys, blank_sqlite
):
    # file:// is a URI Ray (and pyarrow) resolve like s3://: the state lives under
    # $XDG_STATE_HOME on the driver's host, Ray's folder at the URI.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    uri = blank_sqlite(tmp_path / "mlruns.db")
    remote = f"file://{tmp_path / 'bucket'}"
    make_experiment(remote, "far", uri, "FINISHED")
    make_experiment(f"file://{tmp_path / 'other-bucket'}", "elsewhere", uri, "FINISHED")
    (tmp_path / "bucket" / "far").mkdir(parents=True)  # what Ray wrote there
    assert main(["list", "--storage-path", remote, "--json"]) == 0
    out, err = capsys.readouterr()
    assert [e["name"] for e in json.loads(out)] == ["far"]
    assert "another host shows as interrupted" in err
    assert main(["delete", "far", "--storage-path", remote, "--yes"]) == 0
    assert not (tmp_path / "bucket" / "far").exists()
    assert not (tmp_path / "state" / "cnn-tune" / "far").exists()


def test_delete_never_leaves_the_storage_path(tmp_path, monkeypatch, capsys):
    """The reported data loss: `delete ../other` removed a folder beside the storage path
    because it held a saved config."""
    monkeypatch.chdir(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "cnn_tune_config.yaml").write_text("name: other\n")
    (tmp_path / "ray_results").mkdir()
    argv = ["--storage-path", "./ray_results", "--yes", "--keep-runs"]
    for name in ("../other", str(other), "ray_results/../../other", "."):
        assert main(["delete", name, *argv]) == 2
        assert "is not a plain name" in capsys.readouterr().err
    (tmp_path / "ray_results" / "link").symlink_to(other)  # a symlink out of the storage
    assert main(["delete", "link", *argv]) == 2
    assert "outside" in capsys.readouterr().err
    assert sorted(os.listdir(other)) == ["cnn_tune_config.yaml"]


def test_delete_never_follows_a_symlink_inside_the_storage(storage, capsys):
    store, uri = storage
    make_experiment(store, "real", uri, "FINISHED")
    (store / "alias").symlink_to(store / "real")
    assert main(["delete", "alias", "--storage-path", str(store), "--yes", "--keep-runs"]) == 2
    assert "is a symlink" in capsys.readouterr().err
    assert (store / "real" / "cnn_tune_config.yaml").is_file() and (store / "alias").is_symlink()


def test_delete_removes_only_a_cnn_tune_experiment(storage, capsys):
    store, _ = storage
    (store / "plain" / "cnn_tune_config.yaml").mkdir(parents=True)  # a folder, not the config
    assert main(["delete", "plain", "--storage-path", str(store), "--yes", "--keep-runs"]) == 2
    assert "no experiment 'plain'" in capsys.readouterr().err
    assert (store / "plain").is_dir()


def test_a_symlinked_storage_path_is_used_through_its_link(tmp_path, capsys, blank_sqlite):
    real = tmp_path / "disk" / "results"
    real.parent.mkdir()
    uri = blank_sqlite(tmp_path / "mlruns.db")
    make_experiment(real, "s", uri, "FINISHED")
    (tmp_path / "ray_results").symlink_to(real)
    link = str(tmp_path / "ray_results")
    assert main(["stop", "s", "--storage-path", link]) == 2  # found, but no driver
    assert "no driver is running search 's'" in capsys.readouterr().err
    assert main(["delete", "s", "--storage-path", link, "--yes", "--keep-runs"]) == 0
    assert not (real / "s").exists() and real.is_dir()
