"""The layers both networks build alike: the activation by name, the model-configured BatchNorm.

BatchNorm follows the model's `bn_momentum` and `bn_scale` options (`TrialConfig.model_option`).
"""

from __future__ import annotations

from torch import nn

from trainables.config import TrialConfig
from trainables.registry import ACTIVATIONS


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for a registry name (read at call time, so an entry added to
    `ACTIVATIONS` is usable at once)."""
    return ACTIVATIONS[name]()


def batch_norm(channels: int, cfg: TrialConfig) -> nn.BatchNorm2d:
    """BatchNorm2d with the model's momentum; without `bn_scale` its scale stays frozen at 1
    (airbench's choice: the next convolution can scale as well)."""
    norm = nn.BatchNorm2d(channels, momentum=cfg.model_option("bn_momentum"))
    norm.weight.requires_grad = bool(cfg.model_option("bn_scale"))
    return norm
