"""Shared search-config fixtures for the parse, validation and config tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

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
