"""Augmentation policies: name -> batched tensor op with per-sample randomness.

Every policy takes a uint8 batch (B, C, H, W) on the trial's device and a `torch.Generator`
on the same device, and returns a uint8 batch of the same shape. All randomness comes from
the generator, so a seed reproduces a run; each sample draws its own flip, offset or patch
(airbench's `batch_flip_lr` / `batch_crop` idea, without one crop for the whole batch).
Policies run on training batches only; evaluation never calls them.

A policy that mirrors draws each image's flip from the generator, or takes the flips it is
given: airbench's alternating flip (`TrialConfig.flip_mode`) mirrors an image on every other
epoch rather than at random, which shows each image both ways in any two epochs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Step = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

CROP_PAD = 4  # pixels of zero padding before the random crop (the CIFAR standard)


def _uniform(batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(batch, generator=generator, device=device)


def flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    return mirror(x, _uniform(x.shape[0], generator, x.device) < 0.5)


def mirror(x: torch.Tensor, flipped: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the images whose entry of the bool mask `flipped` (B,) is set."""
    return torch.where(flipped[:, None, None, None], x.flip(3), x)


def first_half(seed: int, count: int, device: torch.device) -> torch.Tensor:
    """Alternating flip's fixed random half of `count` training images, from the trial's seed
    (a resumed epoch mirrors the same images): mirrored in odd epochs, the rest in even ones."""
    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.rand(count, generator=generator, device=device) < 0.5  # (N,) bool


def alternating_flips(half: torch.Tensor, indices: torch.Tensor, epoch: int) -> torch.Tensor:
    """Which images at `indices` are mirrored in `epoch` (1-based): each image every other
    epoch, so any two epochs show it both ways (random flips repeat a view half the time)."""
    return half[indices] ^ (epoch % 2 == 0)


def crop(x: torch.Tensor, generator: torch.Generator, pad: int = CROP_PAD) -> torch.Tensor:
    """Zero-pad by `pad` pixels and cut a random (H, W) window per sample (a random translate)."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    batch_idx = torch.arange(b, device=x.device)[:, None, None, None]
    chan_idx = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch_idx, chan_idx, rows, cols]  # (B, C, H, W)


def cutout(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Zero one square of side H/4 per sample at a random centre (DeVries & Taylor, 2017).

    The square may hang over the border, as in the paper, so edges are masked less often.
    """
    b, _, h, w = x.shape
    size = max(1, h // 4)
    cy = torch.randint(0, h, (b,), generator=generator, device=x.device)
    cx = torch.randint(0, w, (b,), generator=generator, device=x.device)
    ys = torch.arange(h, device=x.device)[None, :]  # (1, H)
    xs = torch.arange(w, device=x.device)[None, :]  # (1, W)
    in_y = (ys - cy[:, None]).abs() <= size // 2  # (B, H)
    in_x = (xs - cx[:, None]).abs() <= size // 2  # (B, W)
    mask = in_y[:, :, None] & in_x[:, None, :]  # (B, H, W)
    return x.masked_fill(mask[:, None], 0)


def trivialaugment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """torchvision's TrivialAugmentWide, one op and magnitude drawn per sample, batched."""
    from trainables.trivialaugment import trivialaugment_batch

    return trivialaugment_batch(x, generator)


@dataclass(frozen=True)
class Policy:
    """A mirror (or not), then the steps in order; each step draws from the generator."""

    steps: tuple[Step, ...] = ()
    flips: bool = False

    def __call__(
        self, x: torch.Tensor, generator: torch.Generator, flipped: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.flips:
            x = flip(x, generator) if flipped is None else mirror(x, flipped)
        for step in self.steps:
            x = step(x, generator)
        return x


# name -> policy. Adding a policy is one entry here. Digits must not be flipped: use `crop`.
POLICIES: dict[str, Policy] = {
    "none": Policy(),
    "flip": Policy(flips=True),
    "crop": Policy((crop,)),
    "flip-crop": Policy((crop,), flips=True),
    "cutout": Policy((cutout,)),
    "flip-crop-cutout": Policy((crop, cutout), flips=True),
    "trivialaugment": Policy((trivialaugment,)),
}

# Policies that mirror images: training with one says mirroring keeps the label (tta: auto).
FLIPPING_POLICIES = frozenset(name for name, policy in POLICIES.items() if policy.flips)


def augment(
    name: str, x: torch.Tensor, generator: torch.Generator, flipped: torch.Tensor | None = None
) -> torch.Tensor:
    """Apply policy `name` to a uint8 batch (B, C, H, W); returns the same shape and dtype.

    `flipped` (B,) decides a mirroring policy's flips instead of the generator (alternating flip).
    """
    return POLICIES[name](x, generator, flipped)
