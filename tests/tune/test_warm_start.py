"""tune.warm_start: earlier trials read from folders and MLflow, and what each searcher does
with them (proposals drawn without Ray running; a real warm-started search at the end)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace

import pytest
from ray.tune.experiment import Experiment

from tests.tracking_cases import CFG, TRIAL, result
from tune.config.schema import SearchSettings, dump_search_config
from tune.config.space import Choice, LogUniform
from tune.errors import BadInput
from tune.fit.algorithms import make_param_space, make_searcher
from tune.paths import experiment_path, saved_config_path
from tune.tracking.tracker import Tracker
from tune.warm_start import (
    OTHER_KEYS,
    OTHER_SETUP,
    OUTSIDE,
    Earlier,
    WarmStart,
    new_points,
    plan_warm_start,
)

CHOICES = {"activation": Choice(["relu", "tanh"]), "augment": Choice(["none", "crop"])}


def search_cfg(name="s2", space=None, storage="/r", **search):
    settings = SearchSettings(**{"algorithm": "random", "num_samples": 2, **search})
    mlflow = replace(CFG.mlflow, tracking_uri=f"sqlite:///{storage}/mlruns.db")  # a copy
    return replace(
        CFG, name=name, space=space or CHOICES, search=settings, storage_path=storage,
        mlflow=mlflow,
    )  # fmt: skip


def earlier_folder(storage, name, trials, cfg_changes=None):
    """An experiment folder as a search leaves it: its saved config, params.json, result.json."""
    cfg = replace(search_cfg(name, storage=str(storage)), **(cfg_changes or {}))
    folder = experiment_path(str(storage), name)
    os.makedirs(folder)
    dump_search_config(cfg, saved_config_path(str(storage), name))
    for i, (config, acc) in enumerate(trials):
        trial = os.path.join(folder, f"train_cnn_{i:05d}")
        os.makedirs(trial)
        with open(os.path.join(trial, "params.json"), "w") as f:
            json.dump({**config, "epochs": cfg.epochs}, f)
        with open(os.path.join(trial, "result.json"), "w") as f:
            f.write(json.dumps({"epoch": 1, "val_acc": acc}) + "\n")


def propose(cfg, warm):
    """Every trial config a random or grid searcher proposes, without Ray running."""
    searcher = make_searcher(cfg, warm)
    trainable = lambda config: None  # noqa: E731
    space = make_param_space(cfg, warm.new)
    searcher.add_configurations(
        [Experiment("x", trainable, config=space, num_samples=len(warm.new))]
    )
    proposals = []
    while (trial := searcher.next_trial()) is not None:
        proposals.append((trial.config["activation"], trial.config["augment"]))
    return proposals


def test_a_warm_random_search_proposes_no_config_already_evaluated(tmp_path):
    done = [({"activation": "relu", "augment": "none"}, 0.9),
            ({"activation": "tanh", "augment": "crop"}, 0.8)]  # fmt: skip
    earlier_folder(tmp_path, "s1", done)
    cfg = search_cfg(storage=str(tmp_path), warm_start=["s1"])
    warm = plan_warm_start(cfg)
    assert len(warm.evaluated) == 2 and len(warm.new) == 2
    proposals = propose(cfg, warm)
    assert sorted(proposals) == [("relu", "crop"), ("tanh", "none")]  # the two left
    # Asking for more than is left: only the new ones, with a warning; none left: exit 2.
    assert len(new_points(replace(cfg, search=replace(cfg.search, num_samples=4)), warm)) == 2
    earlier_folder(tmp_path, "s3", [(p, 0.5) for p in warm.new])
    with pytest.raises(BadInput, match="nothing is left to search"):
        plan_warm_start(replace(cfg, search=replace(cfg.search, warm_start=["s1", "s3"])))


def test_a_warm_grid_expands_itself_less_what_was_evaluated(tmp_path):
    earlier_folder(tmp_path, "s1", [({"activation": "relu", "augment": "none"}, 0.9)])
    cfg = search_cfg(storage=str(tmp_path), algorithm="grid", num_samples=1, warm_start=["s1"])
    warm = plan_warm_start(cfg)
    assert sorted(propose(cfg, warm)) == [("relu", "crop"), ("tanh", "crop"), ("tanh", "none")]


def test_only_trials_of_the_same_setup_keys_and_space_seed_optuna(tmp_path):
    earlier_folder(tmp_path, "same", [({"activation": "relu", "augment": "none"}, 0.9),
                                      ({"activation": "elu", "augment": "none"}, 0.7)])  # fmt: skip
    earlier_folder(tmp_path, "other-data", [({"activation": "relu", "augment": "none"}, 0.9)],
                   {"dataset": "fashion-mnist"})  # fmt: skip
    earlier_folder(tmp_path, "other-keys", [({"activation": "relu", "augment": "none"}, 0.9)],
                   {"space": {"activation": Choice(["relu", "tanh"])}})  # fmt: skip
    cfg = search_cfg(storage=str(tmp_path), algorithm="optuna",
                     warm_start=["same", "other-data", "other-keys"])  # fmt: skip
    warm = plan_warm_start(cfg)
    assert [p.config for p in warm.points] == [{"activation": "relu", "augment": "none"}]
    assert warm.skipped == {OUTSIDE: 1, OTHER_SETUP: 1, OTHER_KEYS: 1}  # elu: outside the space
    with pytest.raises(BadInput, match="no search 'never-ran'"):
        plan_warm_start(replace(cfg, search=replace(cfg.search, warm_start=["never-ran"])))
    assert not (tmp_path / "mlruns.db").exists()  # looking for it created no store


def test_earlier_trials_come_from_mlflow_when_the_folder_is_gone(tmp_path, blank_sqlite):
    uri = blank_sqlite(tmp_path / "mlruns.db")
    earlier = search_cfg("s1", storage=str(tmp_path))
    assert earlier.mlflow.tracking_uri == uri
    os.makedirs(tmp_path / "state")
    tracker = Tracker(uri, "cnn-tune", str(tmp_path / "state"))
    tracker.start_search(earlier, "x: 1\n")
    for trial_id, activation, acc in (("a", "relu", 0.9), ("b", "tanh", 0.6)):
        tracker.trial_started(trial_id, {**TRIAL, "activation": activation, "augment": "none"})
        tracker.trial_result(trial_id, result(1, acc))
        tracker.trial_ended(trial_id, "completed")
    tracker.finish_search({}, "FINISHED")
    cfg = replace(search_cfg(storage=str(tmp_path), algorithm="optuna", warm_start=["s1"]),
                  mlflow=earlier.mlflow)  # fmt: skip
    warm = plan_warm_start(cfg)
    got = sorted((p.config["activation"], p.value) for p in warm.points)
    assert got == [("relu", 0.9), ("tanh", 0.6)]


def test_a_warm_optuna_search_starts_nearer_the_earlier_best():
    # 12 earlier trials (TPE's 10 random start-up trials are covered): val_acc peaks at 1e-3.
    space = {"lr": LogUniform(1e-5, 1e-1)}
    earlier = [
        Earlier({"lr": 10**e}, 1.0 - abs(e + 3) / 4)
        for e in (-4.8, -4.5, -4.1, -3.7, -3.4, -3.1, -2.9, -2.6, -2.2, -1.9, -1.5, -1.2)
    ]
    warm = WarmStart(["s1"], evaluated=earlier, points=earlier)

    def first_proposals(w):
        cfg = search_cfg(space=space, algorithm="optuna", seed=3)
        searcher = make_searcher(cfg, w)
        searcher.set_search_properties("val_acc", "max", make_param_space(cfg))
        # The earlier trials are in its study as completed: not proposed again.
        return [searcher.suggest(f"t{i}")["lr"] for i in range(8)]

    def distance(lrs):
        return sum(abs(math.log10(lr) + 3) for lr in lrs) / len(lrs)

    warm_lrs, cold_lrs = first_proposals(warm), first_proposals(None)
    assert distance(warm_lrs) < distance(cold_lrs)
    assert distance(warm_lrs) < 0.75, warm_lrs


def test_a_trial_that_failed_is_not_an_earlier_trial(tmp_path):
    done = [({"activation": "relu", "augment": "none"}, 0.9),
            ({"activation": "tanh", "augment": "crop"}, 0.8)]  # fmt: skip
    earlier_folder(tmp_path, "s1", done)
    (tmp_path / "s1" / "train_cnn_00001" / "error.txt").write_text("Traceback ...")
    warm = plan_warm_start(search_cfg(storage=str(tmp_path), warm_start=["s1"]))
    assert [e.config for e in warm.evaluated] == [{"activation": "relu", "augment": "none"}]
