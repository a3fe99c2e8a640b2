"""tune.commands.folders on experiment folders built by hand (a saved config, a run map, the
lock): what each one's line says, and what stop and delete refuse. `cnn-tune list`, `stop`
and `delete` end to end: tests/tune/commands/test_operate.py."""

from __future__ import annotations

import json
import os

import pytest

from tests.config_cases import with_changes
from tune.commands.folders import (
    NoDriver,
    delete_experiment,
    describe,
    list_experiments,
    saved_tracking_uri,
    state_folders,
    stop_driver,
)
from tune.config.schema import dump_search_config
from tune.config.validation import validate_search_config
from tune.errors import BadInput, ExitCode
from tune.lock import OWNER_FILE, experiment_lock
from tune.paths import CONFIG_FILE
from tune.tracking import RUN_MAP_FILE, RunMap, TrialRun

GRID_SPACE = {"activation": ["relu", "tanh"], "lr": [1e-3, 3e-3]}  # 2 x 2 combinations


def make_folder(storage, name, *, status=None, bests=(), space=None, mtime=None, **search):
    """An experiment folder as a driver leaves it: the saved config, and (with `status`) the run
    map with one trial per entry of `bests` (None: a trial still running)."""
    changes = {"name": name, "search": search, "storage_path": str(storage),
               "mlflow": {"tracking_uri": "sqlite:////db/m.db"}}  # fmt: skip
    if space is not None:
        changes["space"] = space
    folder = storage / name
    folder.mkdir(parents=True)
    cfg = validate_search_config(with_changes(**changes), cwd=str(storage))
    dump_search_config(cfg, folder / CONFIG_FILE)
    if status is not None:
        trials = {
            f"t{i}": TrialRun(f"run{i}", status=None if best is None else "FINISHED", best=best)
            for i, best in enumerate(bests)
        }
        RunMap("sqlite:////db/m.db", "1", "parent", trials=trials, status=status).save(
            str(folder / RUN_MAP_FILE)
        )
    if mtime is not None:
        for entry in os.listdir(folder):
            os.utime(folder / entry, (mtime, mtime))
    return folder


@pytest.fixture
def storage(tmp_path):
    path = tmp_path / "ray_results"
    path.mkdir()
    return path


def test_state_folders_are_the_folders_holding_a_saved_config(storage, tmp_path):
    make_folder(storage, "b")
    make_folder(storage, "a")
    (storage / "ray-only").mkdir()  # Ray's folder of some other tool: no saved config
    (storage / "stray.txt").write_text("x")
    assert state_folders(str(storage)) == {"a": str(storage / "a"), "b": str(storage / "b")}
    assert state_folders(str(tmp_path / "missing")) == {}


@pytest.mark.parametrize(
    "status, state",
    [
        ("FINISHED", "finished"),
        ("FAILED", "failed"),
        ("RUNNING", "interrupted"),  # its driver died without ending the parent run
        ("KILLED", "interrupted"),
    ],
)
def test_the_run_maps_status_gives_the_state_of_a_folder_no_driver_holds(storage, status, state):
    folder = make_folder(storage, "s", status=status, bests=(0.5,))
    assert describe("s", str(folder)).state == state


def test_a_folder_without_a_run_map_was_interrupted_and_one_held_is_running(storage):
    folder = make_folder(storage, "s")
    info = describe("s", str(folder))
    assert (info.state, info.trials_done, info.best, info.parent_run_id) == (
        "interrupted", 0, None, None,
    )  # fmt: skip
    with experiment_lock(str(folder), "s"):
        assert describe("s", str(folder)).state == "running"
    assert describe("s", str(folder)).state == "interrupted"  # the lock died with its holder


def test_a_run_map_of_an_older_version_finished_by_its_flag(storage):
    folder = make_folder(storage, "s")
    RunMap("sqlite:////db/m.db", "1", "parent", finished=True).save(str(folder / RUN_MAP_FILE))
    assert describe("s", str(folder)).state == "finished"


@pytest.mark.parametrize(
    "space, search, total",
    [
        (None, {"algorithm": "random", "num_samples": 8}, 8),
        (GRID_SPACE, {"algorithm": "grid", "num_samples": 1}, 4),
        (GRID_SPACE, {"algorithm": "grid", "num_samples": 3}, 12),
    ],
)
def test_trials_total_is_the_saved_configs_trial_count(storage, space, search, total):
    folder = make_folder(storage, "s", status="RUNNING", bests=(0.5,), space=space, **search)
    assert describe("s", str(folder)).trials_total == total


def test_trials_total_is_never_below_the_trials_the_run_map_holds(storage):
    folder = make_folder(storage, "s", status="FINISHED", bests=(0.1, 0.2, 0.3), num_samples=2)
    assert describe("s", str(folder)).trials_total == 3


def test_a_saved_config_that_no_longer_validates_counts_the_run_maps_trials(storage):
    folder = make_folder(storage, "s", status="FINISHED", bests=(0.1, 0.2))
    with open(folder / CONFIG_FILE, "a") as f:
        f.write("from_a_newer_version: 1\n")
    assert describe("s", str(folder)).trials_total == 2


@pytest.mark.parametrize("mode, best", [("max", 0.9), ("min", 0.2)])
def test_best_is_picked_by_the_searchs_mode_over_the_trials_that_reported(storage, mode, best):
    metric = "val_acc" if mode == "max" else "val_loss"
    folder = make_folder(storage, "s", status="RUNNING", bests=(0.5, 0.9, None, 0.2),
                         metric=metric, mode=mode)  # fmt: skip
    info = describe("s", str(folder))
    assert (info.best, info.metric) == (best, metric)
    assert info.trials_done == 3  # the one still running has no status yet


def test_the_line_carries_the_saved_settings(storage):
    folder = make_folder(storage, "s", status="FINISHED", bests=(0.5,), mtime=1_700_000_000)
    line = describe("s", str(folder)).to_json()
    assert line["dataset"] == "mnist5k" and line["parent_run_id"] == "parent"
    assert line["tracking_uri"] == "sqlite:////db/m.db"
    assert line["storage_path"] == str(storage)
    assert line["started"] == line["last_update"]
    json.dumps(line)  # plain values only: `cnn-tune list --json` prints it


def test_list_puts_the_latest_update_first_and_leaves_out_an_unreadable_folder(storage):
    make_folder(storage, "old", status="FINISHED", mtime=1_700_000_000)
    make_folder(storage, "new", status="FINISHED", mtime=1_700_000_900)
    make_folder(storage, "mid", mtime=1_700_000_500)
    (storage / "broken" / CONFIG_FILE).mkdir(parents=True)  # being written: not yet readable
    assert [i.name for i in list_experiments(str(storage))] == ["new", "mid", "old"]


def test_saved_tracking_uri_is_the_configs(storage):
    folder = make_folder(storage, "s")
    assert saved_tracking_uri(str(folder)) == "sqlite:////db/m.db"
    (folder / CONFIG_FILE).write_text("name: s\n")  # a hand-written config without mlflow
    assert saved_tracking_uri(str(folder)) is None


def test_delete_refuses_a_folder_that_is_not_a_cnn_tune_experiment(storage):
    (storage / "photos").mkdir()
    (storage / "photos" / "cat.jpg").write_text("x")
    with pytest.raises(BadInput, match="no experiment 'photos'"):
        delete_experiment(str(storage), "photos")
    assert (storage / "photos" / "cat.jpg").exists()


def test_delete_of_a_search_that_never_made_its_runs_removes_only_the_folder(storage):
    make_folder(storage, "s")  # interrupted before the MLflow runs: no run map, no store
    assert delete_experiment(str(storage), "s") == {"name": "s", "deleted_runs": 0,
                                                    "kept_runs": False}  # fmt: skip
    assert not (storage / "s").exists() and not os.path.exists("/db/m.db")


def test_stop_without_a_driver_raises_no_driver_exit_2(storage):
    make_folder(storage, "s", status="FINISHED")
    with pytest.raises(NoDriver, match="no driver is running search 's'") as raised:
        stop_driver(str(storage), "s", wait_s=0)
    assert raised.value.exit_code == ExitCode.BAD_INPUT
    with pytest.raises(NoDriver, match="no experiment 'never'"):
        stop_driver(str(storage), "never", wait_s=0)


def test_stop_sends_nothing_to_a_driver_on_another_host_or_without_a_pid(storage):
    folder = make_folder(storage, "s")
    with experiment_lock(str(folder), "s"):
        owner = folder / OWNER_FILE
        owner.write_text(json.dumps({"pid": 1, "host": "elsewhere", "since": "t"}))
        with pytest.raises(BadInput, match="driven from host elsewhere") as raised:
            stop_driver(str(storage), "s", wait_s=0)
        assert not isinstance(raised.value, NoDriver)
        owner.write_text("process 123 (since 2024-01-01)")  # an older version's owner file
        with pytest.raises(NoDriver, match="did not record its process id"):
            stop_driver(str(storage), "s", wait_s=0)
