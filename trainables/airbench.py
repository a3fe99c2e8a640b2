"""airbench94's network (Keller Jordan's CIFAR-10 speed record) with the searched activation.

The ingredients that are the network's own, each a trial-config key (`TrialConfig.model_option`
gives the model's defaults): a first 2x2 convolution frozen at a whitening of the training
images' patches (`whiten`; its bias trains for the first `whiten_bias_epochs` only), identity
(dirac) initialisation of the 3x3 convolutions (`dirac_init`), BatchNorm with fast momentum and
no learned scale (`bn_momentum`, `bn_scale`), groups of conv-pool-BN-act-conv-BN-act at widths
w, 4w, 4w, and logits scaled by 1/9. The optimizer stays the search's Adam. The data-side
ingredients (alternating flip, flip-translate TTA, label smoothing, EMA) are trial keys the loop
reads, usable with either model.
"""

from __future__ import annotations

import torch
from torch import nn

from trainables.config import TrialConfig
from trainables.layers import batch_norm, make_activation

WHITEN_KERNEL = 2  # pixels: airbench's patch size
WHITEN_EPS = 5e-4  # added to the patch covariance's eigenvalues before the inverse square root
WHITEN_SAMPLE = 5000  # training images whose patches set the whitening: `Airbench.fit_sample`
OUTPUT_SCALE = 1 / 9  # airbench's scaling of the logits
WIDTH_GROWTH = 4  # groups after the first are this many times wider (64 -> 256 -> 256)


class Group(nn.Module):
    """conv -> max-pool -> BN -> act -> conv -> BN -> act: airbench's block, pooling first so
    the second convolution runs at a quarter of the pixels."""

    def __init__(self, c_in: int, c_out: int, cfg: TrialConfig):
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out, cfg)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.norm1 = batch_norm(c_out, cfg)
        self.act1 = make_activation(cfg.activation)
        self.conv2 = conv3x3(c_out, c_out, cfg)
        self.norm2 = batch_norm(c_out, cfg)
        self.act2 = make_activation(cfg.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.norm1(self.pool(self.conv1(x))))
        return self.act2(self.norm2(self.conv2(x)))


class Airbench(nn.Module):
    """Maps (B, C, H, W) normalized images to (B, classes) logits, for any C and H, W >= 9."""

    fit_sample = WHITEN_SAMPLE  # how many training images `fit_to_data` wants

    def __init__(self, cfg: TrialConfig, channels: int, classes: int):
        super().__init__()
        self.whiten_bias_epochs = cfg.model_option("whiten_bias_epochs")
        self.whitened = bool(cfg.model_option("whiten"))
        # Twice the patch dimension: the whitening filters and their negatives, so the
        # activation after it keeps both signs of each component.
        stem_width = 2 * channels * WHITEN_KERNEL**2
        self.stem = nn.Conv2d(channels, stem_width, kernel_size=WHITEN_KERNEL, bias=True)
        nn.init.zeros_(self.stem.bias)
        self.stem.weight.requires_grad = not self.whitened
        self.stem_act = make_activation(cfg.activation)
        widths = [cfg.width * (WIDTH_GROWTH if i else 1) for i in range(cfg.depth)]
        self.groups = nn.Sequential(
            *(Group(c_in, c_out, cfg) for c_in, c_out in zip([stem_width, *widths], widths))
        )
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(widths[-1], classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.groups(self.stem_act(self.stem(x)))
        return self.head(self.pool(x).flatten(1)) * OUTPUT_SCALE

    def fit_to_data(self, images: torch.Tensor) -> None:
        """Set the frozen stem to whiten the patches of `images` (normalized (N, C, H, W));
        a learned stem keeps its random init."""
        if self.whitened:
            set_whitening(self.stem, images[: self.fit_sample])

    def before_epoch(self, epoch: int) -> None:
        """The whitening bias trains in the first epochs, then stays: airbench's freeze."""
        if self.whitened:
            self.stem.bias.requires_grad = epoch <= self.whiten_bias_epochs


def conv3x3(c_in: int, c_out: int, cfg: TrialConfig) -> nn.Conv2d:
    """A 3x3 convolution without bias (BN follows); under `dirac_init` its first c_in filters
    start as the identity, so the network starts as shallow as its pooling allows."""
    conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)
    if cfg.model_option("dirac_init"):
        with torch.no_grad():
            nn.init.dirac_(conv.weight[: min(c_in, c_out)])
    return conv


def patch_covariance(images: torch.Tensor, kernel: int, chunk: int = 500) -> torch.Tensor:
    """The (D, D) second moment of every kernel x kernel patch of `images`, D = C * k * k,
    accumulated a chunk of images at a time (all 5,000 images' patches at once would be 230 MB).
    """
    c = images.shape[1]
    dim = c * kernel * kernel
    total = torch.zeros(dim, dim, dtype=torch.float64)
    count = 0
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].float().cpu()
        # (N, C, H-k+1, W-k+1, k, k) -> (patches, C*k*k) in the conv weight's (C, kh, kw) order
        patches = x.unfold(2, kernel, 1).unfold(3, kernel, 1)
        flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, dim).double()
        total += flat.T @ flat
        count += len(flat)
    return total / max(1, count)


def set_whitening(stem: nn.Conv2d, images: torch.Tensor) -> None:
    """Fill the stem with the patch covariance's eigenvectors scaled by 1/sqrt(eigenvalue):
    its first half of outputs have unit variance and no correlation on the data's patches."""
    out_channels, c, k, _ = stem.weight.shape
    eigenvalues, eigenvectors = torch.linalg.eigh(patch_covariance(images, k))
    # largest components first, as airbench orders them; rows are the filters
    scaled = (
        eigenvectors.T.flip(0) / torch.sqrt(eigenvalues.flip(0) + WHITEN_EPS)[:, None]
    ).float()
    filters = scaled.reshape(-1, c, k, k)
    with torch.no_grad():
        stem.weight.copy_(torch.cat([filters, -filters])[:out_channels])
