"""The trial's network, by `TrialConfig.model`: `cnn` here, `airbench` in its own module.

`cnn`: conv-BN-activation stages with max-pooling, then a linear classifier.

The activation is the knob a search varies most, so it comes by name from
`trainables.registry.ACTIVATIONS`.
"""

from __future__ import annotations

import torch
from torch import nn

from trainables.airbench import Airbench
from trainables.config import TrialConfig
from trainables.layers import batch_norm, make_activation

MAX_STAGE_WIDTH = 512  # channels; later stages stop doubling here


def conv_block(c_in: int, c_out: int, cfg: TrialConfig) -> nn.Sequential:
    """3x3 conv (no bias: BN follows), batch norm, activation."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        batch_norm(c_out, cfg),
        make_activation(cfg.activation),
    )


def make_model(cfg: TrialConfig, channels: int, classes: int) -> nn.Module:
    """Build the network for a trial.

    Args:
        cfg: the trial config (model, width, depth, convs_per_stage, dropout, activation, and
            the model's own keys).
        channels: input channels (1 for MNIST-like data, 3 for RGB).
        classes: number of output classes.

    Returns:
        A module mapping (B, channels, H, W) float images to (B, classes) logits. A module with
        data-dependent init has `fit_sample` (how many training images it wants) and
        `fit_to_data(images)`, one with per-epoch settings `before_epoch(epoch)`:
        `trainables.loop.train` calls both.
    """
    if cfg.model == "airbench":
        return Airbench(cfg, channels, classes)
    layers: list[nn.Module] = []
    c_in = channels
    for stage in range(cfg.depth):
        c_out = min(cfg.width * 2**stage, MAX_STAGE_WIDTH)
        for _ in range(cfg.convs_per_stage):
            layers.append(conv_block(c_in, c_out, cfg))
            c_in = c_out
        # ceil_mode: a 28px MNIST image still has 1 pixel after 5 poolings (28-14-7-4-2-1).
        layers.append(nn.MaxPool2d(2, ceil_mode=True))
    layers += [
        # Global max-pool keeps the head independent of image size (28px MNIST, 32px CIFAR).
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        # The maxima of a bounded activation (sigmoid, tanh) all sit near its ceiling; normalized,
        # they vary again. On the demo's digits, epoch-1 val_acc rose from 0.38 to 0.83 (sigmoid)
        # and from 0.59 to 0.91 (tanh), and relu was unchanged (BENCHMARKS.md, section 6).
        nn.BatchNorm1d(c_in),
        nn.Dropout(cfg.dropout),
        nn.Linear(c_in, classes),
    ]
    model = nn.Sequential(*layers)
    _init_weights(model)
    return model


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class NormalizedClassifier(nn.Module):
    """A trained model with its input normalization built in, for export.

    Takes float images in [0, 1], shaped (B, C, H, W) for any batch size B, and returns
    (B, classes) logits: what someone loading the model from MLflow has at hand.
    """

    def __init__(self, model: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1).float())
        self.register_buffer("std", std.reshape(1, -1, 1, 1).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)
