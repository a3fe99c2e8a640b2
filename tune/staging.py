"""Staging a search's dataset once on the driver, before any trial: trials then read the cache.

What was staged is also what MLflow records as the runs' dataset inputs: one per split, named
`<dataset>/<split>`, with the decoded cache file's SHA-256 as digest, so two searches that
trained on the same bytes show the same digest in the UI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tune.config.schema import SearchConfig
from tune.errors import BadInput
from tune.logs import get_logger

log = get_logger("data")

DIGEST_CHARS = 32  # MLflow caps a dataset digest at 36 characters
CONTEXTS = {"train": "training", "val": "validation", "test": "test"}  # mlflow.data.context


@dataclass
class Staged:
    """The staged dataset: its training set's size, and its splits as MLflow dataset inputs."""

    train_images: int
    inputs: list[dict[str, Any]] = field(default_factory=list)  # see `dataset_inputs`


def stage_data(cfg: SearchConfig) -> Staged:
    """Decode (or download) the dataset into this node's cache.

    Raises:
        BadInput (exit 2) when the data is missing or unreadable, before Ray starts.
    """
    from trainables.config import TrialConfig
    from trainables.data import DataError, dataset_from_config

    trial = TrialConfig.from_dict(cfg.fixed_trial_config())
    try:
        splits = dataset_from_config(trial)
    except DataError as exc:
        raise BadInput(str(exc)) from None
    log.info(
        f"data: {cfg.dataset} staged ({len(splits.train_y)} train / {len(splits.val_y)} val images)"
    )
    return Staged(len(splits.train_y), dataset_inputs(trial, splits))


def cache_digest(path: str) -> str:
    """The first `DIGEST_CHARS` hex characters of the cache file's SHA-256 (read from the
    checksum the cache writes beside it; computed when that is missing)."""
    from trainables.cache import CHECKSUM_SUFFIX

    try:
        with open(path + CHECKSUM_SUFFIX) as f:
            digest = f.read().strip()
    except OSError:
        digest = ""
    if len(digest) != 64:
        from trainables.files import sha256_file

        digest = sha256_file(path)
    return digest[:DIGEST_CHARS]


def dataset_inputs(trial: Any, splits: Any) -> list[dict[str, Any]]:
    """One MLflow dataset input per split (plain dicts: they wait in the outbox as JSON).

    Returns:
        [{"name", "digest", "source_type", "source", "profile", "context"}] for train, val and
        (where the dataset has one) test.
    """
    from trainables.cache import cache_path

    path = cache_path(
        trial.dataset, trial.data_root, trial.image_size, trial.image_mode, trial.cache_dir
    )
    digest = cache_digest(path)
    source = json.dumps({"uri": trial.data_root or trial.dataset, "cache_file": path})
    inputs = []
    for split, (x, y) in {
        "train": (splits.train_x, splits.train_y),
        "val": (splits.val_x, splits.val_y),
        "test": (splits.test_x, splits.test_y),
    }.items():
        if y is None:
            continue
        profile = {
            "num_rows": len(y),
            "num_classes": len(splits.classes),
            "image_shape": list(x.shape[1:]),
            "val_fraction": trial.val_fraction,
        }
        inputs.append(
            {
                "name": f"{trial.dataset}/{split}",
                "digest": digest,
                "source_type": "local",  # the cache file on the driver's disk
                "source": source,
                "profile": json.dumps(profile),
                "context": CONTEXTS[split],
            }
        )
    return inputs
