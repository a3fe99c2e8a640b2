"""tune.config: loading, overrides, path resolution and every way a search config can be wrong."""

from __future__ import annotations

import copy
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml

from tune.config import (
    Choice,
    Fixed,
    LogUniform,
    SearchConfig,
    SearchConfigError,
    Uniform,
    dump_search_config,
    load_search_config,
    parse_overrides,
    parse_search_config,
)

# The issue's example config, verbatim: it must load as written.
ISSUE_EXAMPLE = """\
name: demo-mnist5k
dataset: mnist5k
epochs: 4
trial: {width: 32}
space:
  activation: [relu, sigmoid, tanh, leaky_relu]
  augment: [none, crop]
  batch_size: [64, 128]
  lr: {loguniform: [1.0e-4, 1.0e-2]}
search:
  num_samples: 8
  algorithm: random
  scheduler: asha
  metric: val_acc
  mode: max
  max_concurrent: 0
  max_failures: 1
  time_budget_s: null
resources: {cpus_per_trial: 1, gpus_per_trial: 0}
mlflow: {tracking_uri: "sqlite:///mlruns.db", experiment: cnn-tune}
storage_path: ./ray_results
cache_dir: null
"""

BASE: dict[str, Any] = {
    "name": "demo",
    "dataset": "mnist5k",
    "space": {
        "activation": ["relu", "tanh"],
        "augment": ["none", "crop"],
        "batch_size": [64, 128],
        "lr": {"loguniform": [1e-4, 1e-2]},
    },
}


def write(tmp_path: Path, data: Any, name: str = "search.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def with_changes(**changes: Any) -> dict[str, Any]:
    """BASE with top-level keys replaced (a value of ... deletes the key)."""
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def space_with(**entries: Any) -> dict[str, Any]:
    return {**BASE["space"], **entries}


# --------------------------------------------------------------------------------------------
# Valid files
# --------------------------------------------------------------------------------------------


def test_issue_example_loads(tmp_path):
    cfg = load_search_config(write(tmp_path, ISSUE_EXAMPLE), cwd=str(tmp_path))
    assert cfg.name == "demo-mnist5k"
    assert cfg.trial == {"width": 32}
    assert cfg.space["activation"] == Choice(["relu", "sigmoid", "tanh", "leaky_relu"])
    assert cfg.space["lr"] == LogUniform(1e-4, 1e-2)
    assert cfg.search.time_budget_s is None
    assert cfg.mlflow.tracking_uri == f"sqlite:///{tmp_path}/mlruns.db"
    assert cfg.trial_count() == 8


def test_minimal_file_fills_defaults(tmp_path):
    cfg = load_search_config(write(tmp_path, BASE), cwd=str(tmp_path))
    assert cfg.epochs == 4
    assert cfg.trial == {}
    assert cfg.data_root is None and cfg.cache_dir is None
    s = cfg.search
    assert (s.num_samples, s.algorithm, s.scheduler, s.metric, s.mode) == (
        8,
        "random",
        "asha",
        "val_acc",
        "max",
    )
    assert (s.max_concurrent, s.max_failures, s.time_budget_s) == (0, 1, None)
    assert (cfg.resources.cpus_per_trial, cfg.resources.gpus_per_trial) == (1, 0)
    assert cfg.mlflow.experiment == "cnn-tune"
    assert cfg.storage_path == str(tmp_path / "ray_results")


def test_yaml_exponents_without_dot_are_numbers(tmp_path):
    # PyYAML reads 1e-4 (no dot) as a string; the range must still be two floats.
    text = "name: d\ndataset: mnist5k\nspace:\n  lr: {loguniform: [1e-4, 1e-2]}\n  dropout: 1e-1\n"
    cfg = load_search_config(write(tmp_path, text))
    assert cfg.space["lr"] == LogUniform(1e-4, 1e-2)
    assert cfg.space["dropout"] == Fixed(0.1)


def test_space_forms(tmp_path):
    data = with_changes(
        space={
            "activation": {"choice": ["relu", "gelu"]},
            "dropout": {"uniform": [0.0, 0.5]},
            "width": 16,
            "lr": [0.001, 0.003],
        }
    )
    cfg = parse_search_config(data)
    assert cfg.space == {
        "activation": Choice(["relu", "gelu"]),
        "dropout": Uniform(0.0, 0.5),
        "width": Fixed(16),
        "lr": Choice([0.001, 0.003]),
    }


def test_empty_sections_mean_defaults():
    cfg = parse_search_config(with_changes(search=None, trial=None, resources=None))
    assert cfg.search.num_samples == 8 and cfg.trial == {}


def test_overrides_apply_before_validation(tmp_path):
    path = write(tmp_path, with_changes(space=space_with(lr=0.001)))
    cfg = load_search_config(
        path,
        [
            "space.lr={loguniform: [1e-4, 1e-2]}",
            "epochs=2",
            "search.num_samples=3",
            "resources.gpus_per_trial=0.25",
            "trial.width=8",
        ],
    )
    assert cfg.space["lr"] == LogUniform(1e-4, 1e-2)
    assert cfg.epochs == 2
    assert cfg.search.num_samples == 3
    assert cfg.resources.gpus_per_trial == 0.25
    assert cfg.trial == {"width": 8}


def test_overrides_leave_the_callers_mapping_alone():
    data = with_changes(search={"num_samples": 5})
    before = copy.deepcopy(data)
    parse_search_config(data, ["search.num_samples=2", "space.lr=0.01"])
    assert data == before


def test_parse_overrides():
    assert parse_overrides(["space.lr={loguniform: [1e-4, 1e-2]}", "epochs=2", "name=a=b"]) == [
        (["space", "lr"], {"loguniform": ["1e-4", "1e-2"]}),
        (["epochs"], 2),
        (["name"], "a=b"),
    ]
    assert parse_overrides(["cache_dir="]) == [(["cache_dir"], None)]


def test_relative_paths_resolve_against_cwd(tmp_path):
    data = with_changes(
        dataset="imagefolder",
        data_root="data/images",
        cache_dir="~/cache",
        storage_path="results",
        mlflow={"tracking_uri": "sqlite:///db/mlflow.db"},
    )
    cfg = parse_search_config(data, cwd=str(tmp_path))
    assert cfg.data_root == str(tmp_path / "data" / "images")
    assert cfg.cache_dir == os.path.expanduser("~/cache")
    assert cfg.storage_path == str(tmp_path / "results")
    assert cfg.mlflow.tracking_uri == f"sqlite:///{tmp_path}/db/mlflow.db"
    assert cfg.fixed_trial_config()["data_root"] == str(tmp_path / "data" / "images")


def test_paths_resolve_against_the_process_cwd_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = parse_search_config(with_changes(storage_path="./out"))
    assert cfg.storage_path == str(tmp_path / "out")


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("sqlite:////abs/mlruns.db", "sqlite:////abs/mlruns.db"),
        ("sqlite:///rel.db", "sqlite:///{cwd}/rel.db"),
        ("http://mlflow:5000", "http://mlflow:5000"),
        ("https://mlflow.example.com", "https://mlflow.example.com"),
        ("file:./mlruns", "file://{cwd}/mlruns"),
        ("file:///abs/mlruns", "file:///abs/mlruns"),
        ("mlruns", "{cwd}/mlruns"),
        ("databricks", "databricks"),
    ],
)
def test_tracking_uri_forms(tmp_path, uri, expected):
    cfg = parse_search_config(with_changes(mlflow={"tracking_uri": uri}), cwd=str(tmp_path))
    assert cfg.mlflow.tracking_uri == expected.format(cwd=tmp_path)


def test_storage_uri_is_left_alone(tmp_path):
    cfg = parse_search_config(with_changes(storage_path="s3://bucket/x"), cwd=str(tmp_path))
    assert cfg.storage_path == "s3://bucket/x"


def test_trial_count():
    assert parse_search_config(with_changes(search={"num_samples": 5})).trial_count() == 5
    grid = with_changes(
        space=space_with(lr=[1e-3, 3e-3, 1e-2], width=16),
        search={"algorithm": "grid", "num_samples": 2},
    )
    # 2 activations x 2 augments x 2 batch sizes x 3 lrs, each twice
    assert parse_search_config(grid).trial_count() == 2 * 2 * 2 * 3 * 2
    optuna = with_changes(search={"algorithm": "optuna", "num_samples": 6})
    assert parse_search_config(optuna).trial_count() == 6


def test_to_dict_round_trips(tmp_path):
    data = with_changes(
        space=space_with(dropout={"uniform": [0.0, 0.3]}, width=16),
        trial={"depth": 2},
        epochs=3,
        search={"time_budget_s": 60, "algorithm": "optuna", "scheduler": "fifo"},
        resources={"cpus_per_trial": 0.5},
        storage_path="out",
    )
    cfg = parse_search_config(data, cwd=str(tmp_path))
    plain = cfg.to_dict()
    assert plain["space"]["lr"] == {"loguniform": [1e-4, 1e-2]}
    assert plain["space"]["dropout"] == {"uniform": [0.0, 0.3]}
    assert plain["space"]["activation"] == ["relu", "tanh"]
    assert plain["space"]["width"] == 16
    assert yaml.safe_load(yaml.safe_dump(plain)) == plain
    assert parse_search_config(plain, cwd="/elsewhere") == cfg

    dump_search_config(cfg, tmp_path / "resolved.yaml")
    assert load_search_config(tmp_path / "resolved.yaml", cwd="/elsewhere") == cfg


def test_fixed_trial_config():
    cfg = parse_search_config(with_changes(trial={"width": 16, "seed": 3}, epochs=2))
    assert cfg.fixed_trial_config() == {
        "width": 16,
        "seed": 3,
        "dataset": "mnist5k",
        "data_root": None,
        "cache_dir": None,
        "epochs": 2,
    }


def test_error_pickles_with_its_key():
    err = SearchConfigError("space.lr", "bad")
    again = pickle.loads(pickle.dumps(err))
    assert (again.key, str(again)) == ("space.lr", "space.lr: bad")


def test_missing_file(tmp_path):
    with pytest.raises(SearchConfigError, match="does not exist") as info:
        load_search_config(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)


def test_dataclass_is_the_return_type():
    assert isinstance(parse_search_config(BASE), SearchConfig)


# --------------------------------------------------------------------------------------------
# Invalid configs: each message is one line naming the key path and the bad value
# --------------------------------------------------------------------------------------------

INVALID = [
    pytest.param(
        "name: demo\ndataset: mnist5k\nspace:\n  lr: [0.1, 0.2\n",
        [],
        ["search.yaml", "malformed YAML at line 5"],
        id="malformed-yaml",
    ),
    pytest.param("- a\n- b\n", [], ["search.yaml", "not a mapping"], id="not-a-mapping"),
    pytest.param(with_changes(space=...), [], ["space", "required"], id="missing-space"),
    pytest.param(
        with_changes(epoch=3), [], ["epoch", "'epoch'", "allowed: name"], id="unknown-top"
    ),
    pytest.param(
        with_changes(search={"num_sample": 3}),
        [],
        ["search.num_sample", "'num_sample'", "num_samples"],
        id="unknown-nested",
    ),
    pytest.param(
        with_changes(mlflow={"uri": "x"}), [], ["mlflow.uri", "tracking_uri"], id="unknown-mlflow"
    ),
    pytest.param(
        with_changes(space=space_with(activation=["relu", "swishy"])),
        [],
        ["space.activation", "'swishy'", "relu"],
        id="unknown-activation",
    ),
    pytest.param(
        with_changes(space={"lr": [0.001, 0.01]}, trial={"augment": "rotate"}),
        [],
        ["trial.augment", "'rotate'", "crop"],
        id="unknown-augment-in-trial",
    ),
    pytest.param(
        with_changes(space=space_with(augment={"choice": ["none", "mixup"]})),
        [],
        ["space.augment.choice", "'mixup'"],
        id="unknown-augment-in-choice",
    ),
    pytest.param(
        with_changes(dataset="imagenet"), [], ["dataset", "'imagenet'", "mnist5k"], id="dataset"
    ),
    pytest.param(
        with_changes(dataset="cifar10"), [], ["data_root", "'cifar10'"], id="dataset-needs-root"
    ),
    pytest.param(
        with_changes(search={"algorithm": "bayes"}),
        [],
        ["search.algorithm", "'bayes'", "random, grid, optuna"],
        id="unknown-algorithm",
    ),
    pytest.param(
        with_changes(search={"scheduler": "hyperband"}),
        [],
        ["search.scheduler", "'hyperband'", "fifo, asha, pbt"],
        id="unknown-scheduler",
    ),
    pytest.param(
        with_changes(space=space_with(lr=0)), [], ["space.lr", "lr 0.0", "> 0"], id="lr-zero"
    ),
    pytest.param(
        with_changes(space=space_with(lr=[-0.1, 0.01])), [], ["space.lr", "-0.1"], id="lr-negative"
    ),
    pytest.param(
        with_changes(space=space_with(lr={"loguniform": [1e-2, 1e-4]})),
        [],
        ["space.lr.loguniform", "0.01", "0.0001", "low < high"],
        id="inverted-range",
    ),
    pytest.param(
        with_changes(space=space_with(lr={"loguniform": [0, 1e-2]})),
        [],
        ["space.lr.loguniform", "0.0", "0 < low"],
        id="loguniform-zero",
    ),
    pytest.param(
        with_changes(space=space_with(lr={"loguniform": [1e-4]})),
        [],
        ["space.lr.loguniform", "[0.0001]", "[low, high]"],
        id="range-not-a-pair",
    ),
    pytest.param(
        with_changes(space=space_with(dropout={"uniform": [0.0, 1.0]})),
        [],
        ["space.dropout.uniform", "dropout 1.0", "< 1"],
        id="range-end-out-of-trial-range",
    ),
    pytest.param(
        with_changes(space=space_with(batch_size=[0, 64])),
        [],
        ["space.batch_size", "batch_size 0", ">= 1"],
        id="batch-size-zero",
    ),
    pytest.param(
        with_changes(space=space_with(batch_size={"uniform": [16, 256]})),
        [],
        ["space.batch_size.uniform", "batch_size is int", "a list of values"],
        id="range-on-int-field",
    ),
    pytest.param(
        with_changes(space=space_with(dropout={"normal": [0, 1]})),
        [],
        ["space.dropout", "'normal'", "loguniform"],
        id="unknown-space-form",
    ),
    pytest.param(
        with_changes(space=space_with(activation=[])),
        [],
        ["space.activation", "[]"],
        id="empty-list",
    ),
    pytest.param(with_changes(space={}), [], ["space", "empty"], id="empty-space"),
    pytest.param(
        with_changes(space=space_with(widht=[16, 32])),
        [],
        ["space.widht", "'widht'", "width"],
        id="unknown-space-key",
    ),
    pytest.param(
        with_changes(space=space_with(epochs=[2, 4])),
        [],
        ["space.epochs", "top level"],
        id="space-top-level-key",
    ),
    pytest.param(
        with_changes(space=space_with(device=["cpu", "cuda"])),
        [],
        ["space.device"],
        id="space-device",
    ),
    pytest.param(
        with_changes(trial={"lr": 0.1}), [], ["trial.lr", "also in space"], id="trial-in-space"
    ),
    pytest.param(
        with_changes(trial={"epochs": 3}), [], ["trial.epochs", "top-level"], id="trial-top-level"
    ),
    pytest.param(
        with_changes(trial={"max_train_images": 0}),
        [],
        ["trial", "max_train_images", ">= 1"],
        id="trial-bad-cap",
    ),
    pytest.param(with_changes(epochs=0), [], ["epochs", "epochs 0", ">= 1"], id="epochs-zero"),
    pytest.param(with_changes(epochs="abc"), [], ["epochs", "'abc'"], id="epochs-not-int"),
    pytest.param(
        with_changes(search={"num_samples": 0}),
        [],
        ["search.num_samples", "0", ">= 1"],
        id="num-samples-zero",
    ),
    pytest.param(
        with_changes(search={"num_samples": "many"}),
        [],
        ["search.num_samples", "'many'", "an int"],
        id="num-samples-type",
    ),
    pytest.param(
        with_changes(search={"max_concurrent": -1}),
        [],
        ["search.max_concurrent", "-1"],
        id="max-concurrent-negative",
    ),
    pytest.param(
        with_changes(search={"max_failures": -2}),
        [],
        ["search.max_failures", "-2"],
        id="max-failures-negative",
    ),
    pytest.param(
        with_changes(search={"time_budget_s": 0}),
        [],
        ["search.time_budget_s", "0", "> 0"],
        id="time-budget-zero",
    ),
    pytest.param(
        with_changes(search={"mode": "maximize"}),
        [],
        ["search.mode", "'maximize'", "max, min"],
        id="bad-mode",
    ),
    pytest.param(
        with_changes(search={"metric": "val_loss"}),
        [],
        ["search.mode", "'max'", "'val_loss'", "'min'"],
        id="loss-maximized",
    ),
    pytest.param(
        with_changes(search={"metric": "accuracy"}),
        [],
        ["search.metric", "'accuracy'", "val_acc"],
        id="bad-metric",
    ),
    pytest.param(
        with_changes(search={"algorithm": "optuna", "scheduler": "pbt"}),
        [],
        ["search.scheduler", "'pbt'", "'optuna'", "fifo, asha"],
        id="optuna-pbt",
    ),
    pytest.param(
        with_changes(search={"algorithm": "grid"}),
        [],
        ["space.lr", "loguniform", "'grid'"],
        id="grid-continuous",
    ),
    pytest.param(
        with_changes(space=space_with(lr=0.003), search={"scheduler": "pbt"}),
        [],
        ["space.lr", "'pbt'", "0.003"],
        id="pbt-fixed-lr",
    ),
    pytest.param(
        with_changes(space={"activation": ["relu", "tanh"]}, search={"scheduler": "pbt"}),
        [],
        ["space.lr", "'pbt'", "missing"],
        id="pbt-no-lr",
    ),
    pytest.param(with_changes(name="../evil"), [], ["name", "'../evil'", "folder"], id="bad-name"),
    pytest.param(with_changes(name=".hidden"), [], ["name", "'.hidden'"], id="dot-name"),
    pytest.param(with_changes(name="x" * 101), [], ["name", "1-100"], id="long-name"),
    pytest.param(with_changes(name=7), [], ["name", "7 is an int", "a str"], id="name-not-str"),
    pytest.param(
        with_changes(resources={"gpus_per_trial": -1}),
        [],
        ["resources.gpus_per_trial", "-1"],
        id="negative-gpus",
    ),
    pytest.param(
        with_changes(resources={"gpus_per_trial": 1.5}),
        [],
        ["resources.gpus_per_trial", "1.5", "whole"],
        id="gpus-fraction-above-one",
    ),
    pytest.param(
        with_changes(resources={"cpus_per_trial": 0}),
        [],
        ["resources.cpus_per_trial", "0", "> 0"],
        id="zero-cpus",
    ),
    pytest.param(
        with_changes(search=[1, 2]), [], ["search", "[1, 2]", "a mapping"], id="section-not-mapping"
    ),
    pytest.param(BASE, ["epochs2"], ["--set epochs2", "KEY=VALUE"], id="set-without-equals"),
    pytest.param(BASE, ["=3"], ["--set =3", "KEY=VALUE"], id="set-empty-key"),
    pytest.param(BASE, ["search..x=3"], ["--set search..x=3"], id="set-empty-part"),
    pytest.param(
        BASE, ["search.nope=1"], ["search.nope", "'nope'", "num_samples"], id="set-unknown-path"
    ),
    pytest.param(BASE, ["nope=1"], ["nope", "'nope'", "allowed: name"], id="set-unknown-top"),
    pytest.param(BASE, ["name.x=1"], ["name.x", "'demo'", "not a mapping"], id="set-into-scalar"),
    pytest.param(
        BASE,
        ["space.lr={loguniform: [1"],
        ["--set space.lr={loguniform: [1", "malformed YAML"],
        id="set-malformed-value",
    ),
    pytest.param(
        BASE,
        ["space.activation=[relu, swishy]"],
        ["space.activation", "'swishy'"],
        id="set-bad-value",
    ),
]


@pytest.mark.parametrize("data, overrides, fragments", INVALID)
def test_invalid_config(tmp_path, data, overrides, fragments):
    path = write(tmp_path, data)
    with pytest.raises(SearchConfigError) as info:
        load_search_config(path, overrides, cwd=str(tmp_path))
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert message.startswith(info.value.key + ": ")


def test_invalid_table_is_large_enough():
    assert len(INVALID) >= 20
