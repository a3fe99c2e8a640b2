"""The only Ray-aware file in `trainables`: a Tune function trainable around `loop.train`.

It resumes from `tune.get_checkpoint()` when Ray restores the trial (a retry after a fault,
a resumed experiment, a PBT exploit) and reports once per epoch with a checkpoint holding
model, optimizer, epoch and resolved config.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

import torch

from trainables.config import TrialConfig
from trainables.data import dataset_from_config
from trainables.faults import fill_before_report
from trainables.loop import choose_device, train
from trainables.resource_meter import UsageMeter

CHECKPOINT_FILE = "checkpoint.pt"


def load_checkpoint_state(directory: str) -> dict[str, Any]:
    """Read the state `train_cnn` saved in a checkpoint folder."""
    return torch.load(
        os.path.join(directory, CHECKPOINT_FILE), map_location="cpu", weights_only=False
    )


def log_to_worker_stderr() -> None:
    """Send the trial's `cnn_tune` lines (dataset decoding, cache) to the worker's stderr, which
    Ray keeps in its log files: the driver's logging setup does not reach worker processes."""
    logger = logging.getLogger("cnn_tune")
    if not logger.handlers:  # a reused worker keeps the handler of its first trial
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def train_cnn(config: dict[str, Any]) -> None:
    """Ray Tune entry point: one trial of a search. `config` is a plain trial config dict."""
    from ray import tune  # lazy: trainables imports without Ray

    log_to_worker_stderr()
    cfg = TrialConfig.from_dict(config)
    state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = load_checkpoint_state(directory)

    import ray

    # The node id tells trials on two nodes of one machine apart (same hostname, same IP).
    node_id = ray.get_runtime_context().get_node_id()

    meter = UsageMeter(choose_device(cfg.device))

    def send_epoch(metrics: dict[str, Any], snapshot) -> None:
        with tempfile.TemporaryDirectory() as directory:
            torch.save(snapshot(), os.path.join(directory, CHECKPOINT_FILE))
            fill_before_report(metrics["epoch"], config)  # test-only: a full disk right here
            tune.report(
                {**metrics, **meter.metrics(), "node_id": node_id},
                checkpoint=tune.Checkpoint.from_directory(directory),
            )

    # The worker may run the next trial too (reuse_actors): it keeps the dataset for it.
    with meter:
        train(cfg, on_epoch=send_epoch, state=state, splits=dataset_from_config(cfg, keep=True))
