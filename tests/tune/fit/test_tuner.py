"""tune.fit.tuner: the stopper, SIGTERM as Ctrl-C, the Tuner it builds, the outcome read from
Ray's results, and the full-disk retry read from Ray's saved state, all without a cluster; and
on the session's Ray, where and when a fit lets go of Ray."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pandas as pd
import pytest
import ray
from ray.tune import Checkpoint, Result

from tests.config_cases import with_changes
from tests.helpers import DEMO, cnn_tune_here, grid_args
from tune.config.validation import validate_search_config
from tune.errors import StateUnreadable
from tune.fit.stopping import SearchStopper
from tune.fit.tuner import (
    CHECKPOINTS_TO_KEEP,
    make_stopper,
    make_tuner,
    outcome_from,
    read_experiment_state,
    retry_full_disk_trials,
    saved_statuses,
    sigterm_as_sigint,
)
from tune.warm_start import Earlier, WarmStart

GRID_SPACE = {"activation": ["relu", "tanh"], "lr": [1e-3, 3e-3]}  # 2 x 2 combinations


def config(tmp_path, space=None, **search):
    changes = {"search": search} if space is None else {"search": search, "space": space}
    return validate_search_config(with_changes(**changes), cwd=str(tmp_path))


# --- the stopper and the signal ---------------------------------------------------------------


def test_no_stopper_without_a_stop_rule(tmp_path):
    assert make_stopper(config(tmp_path)) is None


def test_a_stop_rule_becomes_a_search_stopper_on_the_search_metric(tmp_path):
    cfg = config(tmp_path, stop={"target": 0.2}, metric="val_loss", mode="min")
    stopper = make_stopper(cfg)
    assert isinstance(stopper, SearchStopper)
    assert (stopper.rule.target, stopper.metric, stopper.mode) == (0.2, "val_loss", "min")
    assert stopper.fired is None


def test_sigterm_inside_the_context_is_a_keyboard_interrupt_and_the_old_handler_comes_back():
    def earlier(signum, frame):  # what was installed before: must be back afterwards
        raise AssertionError("the earlier handler ran inside the context")

    before = signal.signal(signal.SIGTERM, earlier)
    # Ctrl-C's own meaning, whatever an earlier test left installed
    before_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with sigterm_as_sigint():
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)  # the signal arrives at the next bytecode; sleep is cut short
        assert signal.getsignal(signal.SIGTERM) is earlier
    finally:
        signal.signal(signal.SIGTERM, before)
        signal.signal(signal.SIGINT, before_int)


def test_handlers_ray_tune_leaves_behind_are_undone():
    # Ray Tune's fit installs SIGINT/SIGUSR1 handlers and never takes them back
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGUSR1)}
    with sigterm_as_sigint():
        signal.signal(signal.SIGINT, lambda *_: None)
        signal.signal(signal.SIGUSR1, lambda *_: None)
    assert {s: signal.getsignal(s) for s in before} == before


def test_the_old_handler_comes_back_when_the_block_raises():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(ValueError), sigterm_as_sigint():
        assert signal.getsignal(signal.SIGTERM) is not before
        raise ValueError("the search failed")
    assert signal.getsignal(signal.SIGTERM) is before


# --- the Tuner ---------------------------------------------------------------------------------


def tune_config(tuner):
    return tuner._local_tuner._tune_config  # Ray has no public getter; the module reads it too


def test_a_new_search_builds_its_tuner_without_starting_ray(tmp_path):
    cfg = config(tmp_path, num_samples=5, max_failures=3, stop={"target": 0.9})
    stopper = make_stopper(cfg)
    tuner = make_tuner(cfg, ["callback"], stopper)
    assert not ray.is_initialized()
    tc = tune_config(tuner)
    assert (tc.num_samples, tc.metric, tc.mode, tc.reuse_actors) == (5, "val_acc", "max", True)
    run = tuner._local_tuner.get_run_config()
    assert (run.name, run.storage_path) == ("demo", str(tmp_path / "ray_results"))
    assert run.stop is stopper and run.callbacks == ["callback"]
    assert run.failure_config.max_failures == 3
    assert run.checkpoint_config.num_to_keep == CHECKPOINTS_TO_KEEP


@pytest.mark.parametrize("algorithm, space", [("random", None), ("grid", GRID_SPACE)])
def test_a_warm_random_or_grid_search_runs_exactly_its_new_points(tmp_path, algorithm, space):
    cfg = config(tmp_path, space, algorithm=algorithm, num_samples=2)
    new = [
        {"activation": "relu", "augment": "none", "batch_size": 64, "lr": 1e-3},
        {"activation": "tanh", "augment": "crop", "batch_size": 128, "lr": 3e-3},
        {"activation": "tanh", "augment": "none", "batch_size": 64, "lr": 3e-3},
    ]
    tuner = make_tuner(cfg, [], warm=WarmStart(sources=["earlier"], new=new))
    assert tune_config(tuner).num_samples == 3
    # No grid_search left for Ray to expand on top of the points.
    space_given = tuner._local_tuner._param_space
    assert not any(isinstance(v, dict) and "grid_search" in v for v in space_given.values())


def test_a_cold_grid_search_leaves_the_expansion_to_ray(tmp_path):
    cfg = config(tmp_path, GRID_SPACE, algorithm="grid", num_samples=2)
    tuner = make_tuner(cfg, [])
    assert tune_config(tuner).num_samples == 2  # repeats of the grid: 2 x 4 = 8 trials
    assert tuner._local_tuner._param_space["activation"] == {"grid_search": ["relu", "tanh"]}


def test_a_warm_optuna_search_is_seeded_and_runs_num_samples(tmp_path):
    cfg = config(tmp_path, algorithm="optuna", num_samples=6)
    earlier = Earlier({"activation": "relu", "augment": "crop", "batch_size": 64, "lr": 1e-3}, 0.9)
    warm = WarmStart(sources=["earlier"], evaluated=[earlier], points=[earlier])  # new: None
    tuner = make_tuner(cfg, [], warm=warm)
    tc = tune_config(tuner)
    assert tc.num_samples == 6
    assert type(tc.search_alg).__name__ == "OptunaSearch"


# --- the outcome -------------------------------------------------------------------------------


def test_outcome_holds_records_histories_by_epoch_and_checkpoints(tmp_path):
    trial_config = {"activation": "relu", "lr": 1e-3}
    ckpt_dir = tmp_path / "checkpoint_000002"
    ckpt_dir.mkdir()
    checkpoint = Checkpoint(str(ckpt_dir))
    # A restored trial re-runs epoch 2 after its checkpoint of epoch 1: the re-run counts.
    frame = pd.DataFrame(
        [
            {"epoch": 1, "val_acc": 0.5},
            {"epoch": 2, "val_acc": 0.6},
            {"epoch": 2, "val_acc": 0.65},
            {"epoch": 3, "val_acc": 0.7},
        ]
    )
    finished = Result(
        metrics={"trial_id": "t1", "epoch": 3, "val_acc": 0.7, "config": trial_config},
        checkpoint=checkpoint,
        error=None,
        path=str(tmp_path / "train_cnn_t1"),
        metrics_dataframe=frame,
    )
    failed = Result(
        metrics={},  # it never reported
        checkpoint=None,
        error=RuntimeError("Traceback (most recent call last):\n  File x\nValueError: bad lr\n\n"),
        path=str(tmp_path / "t2"),
        metrics_dataframe=None,
    )
    silent = Result(metrics=None, checkpoint=None, error=RuntimeError(""), path="/r/t3")

    outcome = outcome_from([finished, failed, silent])

    assert [r.trial_id for r in outcome.records] == ["t1", "t2", "t3"]  # path's name: no metrics
    one, two, three = outcome.records
    assert one.config == trial_config and one.metrics["val_acc"] == 0.7 and one.error is None
    assert (two.config, two.metrics, two.error) == ({}, {}, "ValueError: bad lr")  # last line
    assert three.error == "RuntimeError"  # an empty message: its type
    assert [(h["epoch"], h["val_acc"]) for h in outcome.histories["t1"]] == [
        (1, 0.5), (2, 0.65), (3, 0.7),
    ]  # fmt: skip
    assert "t2" not in outcome.histories
    assert outcome.checkpoints == {"t1": checkpoint, "t2": None, "t3": None}


def test_histories_are_ordered_by_epoch_whatever_the_report_order(tmp_path):
    frame = pd.DataFrame([{"epoch": 3, "val_acc": 0.3}, {"epoch": 1, "val_acc": 0.1}])
    result = Result(metrics={"trial_id": "t"}, checkpoint=None, error=None,
                    path=str(tmp_path), metrics_dataframe=frame)  # fmt: skip
    assert [h["epoch"] for h in outcome_from([result]).histories["t"]] == [1, 3]


def test_a_trial_ray_returns_twice_is_one_record_of_its_furthest_result(tmp_path):
    # Seen once in CI: a stopped search's ResultGrid held a finished trial and a copy of it that
    # never reported (the summary counted 7 trials for 6 runs).
    frame = pd.DataFrame([{"epoch": 1, "val_acc": 0.1}, {"epoch": 2, "val_acc": 0.2}])
    reported = {"trial_id": "t4", "epoch": 2, "training_iteration": 2, "val_acc": 0.2}
    done = Result(metrics=reported, checkpoint=None, error=None, path=str(tmp_path / "t4"),
                  metrics_dataframe=frame)  # fmt: skip
    copy = Result(metrics={"trial_id": "t4"}, checkpoint=None, error=None, path=str(tmp_path))
    other = Result(metrics={"trial_id": "t5"}, checkpoint=None, error=None, path=str(tmp_path))
    for order in ([done, other, copy], [copy, other, done]):
        outcome = outcome_from(order)
        assert [r.trial_id for r in outcome.records] == ["t4", "t5"]
        assert outcome.records[0].metrics["val_acc"] == 0.2
        assert [h["epoch"] for h in outcome.histories["t4"]] == [1, 2]


# --- the saved experiment state ----------------------------------------------------------------


def save_experiment_state(storage, name, statuses):
    """Ray's experiment state as `Tuner.fit` saves it (its own Trial and encoder), with one
    trial folder each; returns the experiment folder."""
    from ray.train._internal.storage import StorageContext
    from ray.tune.experiment.trial import Trial
    from ray.tune.utils.serialization import TuneFunctionEncoder

    trials = []
    for trial_id, status in statuses.items():
        context = StorageContext(
            storage_path=str(storage), experiment_dir_name=name, trial_dir_name=f"t_{trial_id}"
        )
        trial = Trial("train_cnn", trial_id=trial_id, storage=context, stub=True)
        trial.create_placement_group_factory()
        trial.status = status
        os.makedirs(trial.path)
        open(os.path.join(trial.path, "result.json"), "w").close()
        trials.append(trial)
    state = {"trial_data": [t.get_json_state() for t in trials], "runner_data": {},
             "stats": {"start_time": 0.0}}  # fmt: skip
    folder = storage / name
    with open(folder / "experiment_state-2026-01-01_00-00-00.json", "w") as f:
        json.dump(state, f, cls=TuneFunctionEncoder)
    return folder


def write_error(folder, trial_id, text):
    (folder / f"t_{trial_id}" / "error.txt").write_text(text)


def test_saved_statuses_are_what_the_experiment_state_holds(tmp_path):
    folder = save_experiment_state(tmp_path, "s", {"a": "TERMINATED", "b": "PENDING"})
    assert saved_statuses(str(folder)) == {"a": "TERMINATED", "b": "PENDING"}


@pytest.mark.parametrize("cut", [0.5, 0.0])
def test_a_state_file_cut_short_is_one_line_naming_it(tmp_path, cut):
    # What a full disk leaves when it strikes while Ray copies its state to storage.
    folder = save_experiment_state(tmp_path, "s", {"a": "TERMINATED", "b": "PENDING"})
    [state] = folder.glob("experiment_state-*.json")
    state.write_bytes(state.read_bytes()[: int(state.stat().st_size * cut)])
    with pytest.raises(StateUnreadable) as unreadable:
        saved_statuses(str(folder))
    line = str(unreadable.value)
    assert f"cannot read Ray's experiment state {state}: " in line and "\n" not in line
    assert unreadable.value.exit_code == 2


def test_trials_that_all_failed_on_a_full_disk_are_retried(tmp_path, caplog):
    statuses = {"a": "ERROR", "b": "ERROR", "c": "TERMINATED"}
    folder = save_experiment_state(tmp_path, "s", statuses)
    write_error(folder, "a", "Traceback ...\nOSError: [Errno 28] No space left on device\n")
    # b's error file is missing: the full disk cut it short.
    with caplog.at_level("INFO", logger="cnn_tune"):
        assert retry_full_disk_trials(read_experiment_state(str(folder)).trials) is True
    assert "continuing trials a, b" in caplog.text


def test_a_genuine_failure_beside_them_keeps_every_errored_trial_errored(tmp_path, caplog):
    folder = save_experiment_state(tmp_path, "s", {"a": "ERROR", "b": "ERROR"})
    write_error(folder, "a", "OSError: [Errno 28] No space left on device\n")
    write_error(folder, "b", "ValueError: lr must be > 0\n")
    assert retry_full_disk_trials(read_experiment_state(str(folder)).trials) is False
    assert "--retry-errored" in caplog.text and "trials a failed on a full disk" in caplog.text


def test_nothing_is_retried_without_a_full_disk_failure(tmp_path):
    folder = save_experiment_state(tmp_path, "s", {"a": "TERMINATED", "b": "ERROR"})
    write_error(folder, "b", "ValueError: lr must be > 0\n")
    assert retry_full_disk_trials(read_experiment_state(str(folder)).trials) is False


# --- letting go of Ray ----------------------------------------------------------------------------


@pytest.mark.ray
def test_ray_is_shut_down_on_the_drivers_own_thread_before_the_end_is_logged(
    tmp_path, ray_address, monkeypatch
):
    """Ray stopped on a thread of its own while the driver dropped the tuner and its results:
    a handle freed mid-shutdown met a core worker already gone, and Ray ended the test session
    itself (exit 1, no message). So the fit shuts Ray down on the thread that holds them, and
    nothing of the end of the search runs while Ray is still connected."""
    import tune.driver

    real_shutdown, real_end = ray.shutdown, tune.driver.end_search
    calls = []

    def shutdown(*args, **kwargs):
        calls.append(threading.current_thread() is threading.main_thread())
        real_shutdown(*args, **kwargs)

    def end_search(*args, **kwargs):
        calls.append("end" if not ray.is_initialized() else "end while connected")
        return real_end(*args, **kwargs)

    monkeypatch.setattr(ray, "shutdown", shutdown)
    monkeypatch.setattr(tune.driver, "end_search", end_search)
    args = grid_args("[relu]", epochs=1, images=200)
    out = cnn_tune_here("run", str(DEMO), *args, cwd=tmp_path, address=ray_address)
    assert out.returncode == 0, out.stderr[-3000:]
    assert calls[:2] == [True, "end"], calls
