"""tune.config.parse: config files and mappings, `--set` overrides, and path resolution."""

from __future__ import annotations

import copy
import os

import pytest

from tests.config_cases import BASE, ISSUE_EXAMPLE, space_with, with_changes, write
from tune.config.parse import load_search_config, parse_overrides, parse_search_config
from tune.config.schema import SearchConfig
from tune.config.space import Choice, Fixed, LogUniform, Uniform
from tune.errors import SearchConfigError


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


def test_storage_uri_is_left_alone(tmp_path):
    cfg = parse_search_config(with_changes(storage_path="s3://bucket/x"), cwd=str(tmp_path))
    assert cfg.storage_path == "s3://bucket/x"


def test_missing_file(tmp_path):
    with pytest.raises(SearchConfigError, match="does not exist") as info:
        load_search_config(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)


def test_dataclass_is_the_return_type():
    assert isinstance(parse_search_config(BASE), SearchConfig)
