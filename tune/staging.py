"""Staging a search's dataset once on the driver, before any trial: trials then read the cache."""

from __future__ import annotations

from tune.config import SearchConfig
from tune.errors import BadInput
from tune.logs import get_logger

log = get_logger("data")


def stage_data(cfg: SearchConfig) -> int:
    """Decode (or download) the dataset into this node's cache.

    Returns:
        The number of training images.

    Raises:
        BadInput (exit 2) when the data is missing or unreadable, before Ray starts.
    """
    from trainables.config import TrialConfig
    from trainables.data import DataError, dataset_from_config

    try:
        splits = dataset_from_config(TrialConfig.from_dict(cfg.fixed_trial_config()))
    except DataError as exc:
        raise BadInput(str(exc)) from None
    log.info(
        f"data: {cfg.dataset} staged ({len(splits.train_y)} train / {len(splits.val_y)} val images)"
    )
    return len(splits.train_y)
