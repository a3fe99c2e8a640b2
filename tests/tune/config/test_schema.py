"""tune.config.schema: the dataclasses' trial count, plain-dict round trip, fixed trial values."""

from __future__ import annotations

import yaml

from tests.config_cases import space_with, with_changes
from tune.config.parse import load_search_config, parse_search_config
from tune.config.schema import dump_search_config


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
        search={
            "time_budget_s": 60,
            "algorithm": "optuna",
            "scheduler": "fifo",
            "stop": {"target": 0.99, "plateau": {"patience": 4}},
        },  # fmt: skip
        resources={"cpus_per_trial": 0.5},
        notify={"webhook": "https://hooks.example/T/SECRET", "on": ["failed"]},
        storage_path="out",
    )
    cfg = parse_search_config(data, cwd=str(tmp_path))
    plain = cfg.to_dict()
    assert plain["space"]["lr"] == {"loguniform": [1e-4, 1e-2]}
    assert plain["space"]["dropout"] == {"uniform": [0.0, 0.3]}
    assert plain["space"]["activation"] == ["relu", "tanh"]
    assert plain["space"]["width"] == 16
    assert plain["search"]["stop"] == {
        "target": 0.99,
        "plateau": {"patience": 4, "tolerance": 0.0},
    }
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
