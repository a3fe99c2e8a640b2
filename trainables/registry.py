"""The names of the open sets: activations, augmentation policies, datasets; imports no config.

`TrialConfig.validate` checks names against these three dicts. Adding an activation is one entry
in `ACTIVATIONS` here; a policy is one entry in `trainables.augment.POLICIES`, a dataset one in
`trainables.datasets.DATASETS` (each next to the code it names). Importing this costs only torch.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from trainables.augment import POLICIES
from trainables.datasets import DATASETS

__all__ = ["ACTIVATIONS", "DATASETS", "POLICIES"]

# name -> module factory. Adding an activation is one entry here.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": lambda: nn.LeakyReLU(0.01, inplace=True),
    "gelu": nn.GELU,
    "silu": lambda: nn.SiLU(inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
}
