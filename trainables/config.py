"""`TrialConfig`: every knob of one trial, its default and its allowed values, in one place."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, fields
from typing import Any

from trainables.files import path_problem, shorten


class ConfigError(ValueError):
    """A trial config key is unknown or has a value that is not allowed."""


# The open sets (datasets, augmentations, activations) live in their registries.
LR_SCHEDULES = ("constant", "onecycle", "linear")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
# auto: flip where the trial's augmentation flips; flip-translate: airbench's level 2
TTAS = ("auto", "none", "flip", "flip-translate")
FLIP_MODES = ("random", "alternate")
# The networks (trainables.model) and each one's defaults for the keys that tune it: a key left
# null takes its model's value here, and setting a key its model lacks is an error.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "cnn": {"bn_momentum": 0.1, "bn_scale": True},
    "airbench": {
        "whiten": True,
        "whiten_bias_epochs": 3,
        "dirac_init": True,
        "bn_momentum": 0.4,
        "bn_scale": False,
    },
}
IMAGE_MODES = ("RGB", "L")
# Seeds are derived from the trial's seed (per epoch: seed * 1_000_003 + epoch) and from the
# search's (numpy's RandomState in Optuna): below 2**32 both fit their generators.
SEED_LIMIT = 2**32


@dataclass
class TrialConfig:
    """One trial of a search: data, model, optimizer and loop settings.

    Units are in the comments; every default is what a sane first run would use.
    """

    # --- data ---
    dataset: str = "mnist5k"  # a name in trainables.registry.DATASETS
    data_root: str | None = None  # raw dataset folder (torchvision root / ImageFolder root)
    download: bool = False  # torchvision datasets download only when asked
    # decoded-tensor cache; None: per-user cache folder; a URI (s3://, file:///nfs/...): shared
    # storage that nodes copy the decoded file from (trainables.shared_cache)
    cache_dir: str | None = None
    image_size: int = 32  # pixels, ImageFolder images are resized to (size, size)
    image_mode: str = "RGB"  # ImageFolder decode mode: RGB or L (grayscale)
    val_fraction: float = 0.1  # share of train held out for validation when no val split
    max_train_images: int | None = None  # cap on training images for quick runs; None: all
    # --- augmentation and model ---
    augment: str = "crop"  # a name in trainables.registry.POLICIES
    activation: str = "relu"  # a name in trainables.registry.ACTIVATIONS
    # how flipping policies mirror: at random per image, or each image on alternate epochs
    flip_mode: str = "random"
    # cnn: conv-BN-activation stages; airbench: airbench94's network (trainables.airbench)
    model: str = "cnn"
    width: int = 32  # channels of the first stage; each later stage doubles it
    depth: int = 3  # stages of conv blocks, each ending in a 2x2 max-pool
    convs_per_stage: int = 1  # conv-BN-activation layers per stage
    dropout: float = 0.0  # before the classifier
    # Model-specific keys; null takes the model's value (MODEL_DEFAULTS). airbench only: a frozen
    # 2x2 patch-whitening first conv set from the data, the epochs its bias trains, identity init.
    whiten: bool | None = None
    whiten_bias_epochs: int | None = None
    dirac_init: bool | None = None
    bn_momentum: float | None = None  # torch's BatchNorm momentum: the new batch's weight
    bn_scale: bool | None = None  # whether BatchNorm learns a scale (its bias is always learned)
    # --- optimization ---
    batch_size: int = 128  # images per step
    lr: float = 3e-3  # Adam peak learning rate; > 10 only overflows float32 weights
    weight_decay: float = 0.0  # L2 penalty inside Adam (torch.optim.Adam's weight_decay)
    label_smoothing: float = 0.0
    lr_schedule: str = "onecycle"  # constant | onecycle (warm-up then cosine) | linear decay
    # Decay of an exponential moving average of the weights (and BN statistics), per step; the
    # average is what is evaluated and exported. 0: off, the raw weights.
    ema: float = 0.0
    epochs: int = 5
    seed: int = 0  # model init, batch order and augmentation; not the val split
    device: str = "auto"  # auto picks CUDA when present
    # bf16 autocast: auto uses it on CUDA and on CPUs with AMX / AVX512-BF16 (native bf16);
    # fp32 for bit-for-bit comparisons across machines.
    precision: str = "auto"
    eval_batch_size: int = 1024  # images per evaluation step (no gradients)
    compile: bool = False  # torch.compile the model: a one-off warm-up (~10-60 s) for faster steps
    # Evaluation also on mirrored images, logits averaged: +0.5-1 point where mirroring is
    # label-preserving, which the trial says by training with flips (auto); never for digits.
    tta: str = "auto"
    # NHWC activations: what cuDNN's and oneDNN's fastest convolution kernels read; off to measure.
    channels_last: bool = True

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialConfig:
        """Build and validate a config from plain values (a Ray trial config, a JSON object).

        `data_root` and `cache_dir` come back absolute (`resolve_paths`).

        Raises:
            ConfigError: naming the first unknown key or bad value and what is allowed.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown trial config key {unknown[0]!r}; allowed keys: {', '.join(sorted(known))}"
            )
        cfg = cls(**{k: _coerce(k, v) for k, v in values.items()})
        cfg.validate()
        cfg.resolve_paths()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_option(self, key: str) -> Any:
        """A model-specific key's value: the config's, else its model's default."""
        value = getattr(self, key)
        return MODEL_DEFAULTS[self.model][key] if value is None else value

    def validate(self) -> None:
        """Check every value against what is allowed; raise `ConfigError` on the first bad one.

        Only checks: the config is left as it is (see `resolve_paths`).
        """
        # Lazy: the registries import torch, which a YAML check need not pay for at import.
        from trainables.registry import ACTIVATIONS, DATASETS, POLICIES

        _check_choice("dataset", self.dataset, list(DATASETS))
        _check_choice("augment", self.augment, list(POLICIES))
        _check_choice("activation", self.activation, list(ACTIVATIONS))
        _check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _check_choice("device", self.device, DEVICES)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("tta", self.tta, TTAS)
        _check_choice("flip_mode", self.flip_mode, FLIP_MODES)
        _check_choice("model", self.model, list(MODEL_DEFAULTS))
        for key in sorted({k for d in MODEL_DEFAULTS.values() for k in d}):
            if getattr(self, key) is not None and key not in MODEL_DEFAULTS[self.model]:
                models = [m for m, d in MODEL_DEFAULTS.items() if key in d]
                raise ConfigError(
                    f"{key} {getattr(self, key)!r} does not apply to model {self.model!r}; "
                    f"allowed: null, or model {' or '.join(models)}"
                )
        if self.bn_momentum is not None:
            _check_range("bn_momentum", self.bn_momentum, low=0.0, high=1.0, low_open=True)
        if self.whiten_bias_epochs is not None:
            _check_range("whiten_bias_epochs", self.whiten_bias_epochs, low=0)
        _check_choice("image_mode", self.image_mode, IMAGE_MODES)
        _check_range("lr", self.lr, low=0.0, high=10.0, low_open=True)
        # Batch norm needs two images per step to compute batch statistics.
        _check_range("batch_size", self.batch_size, low=2, high=65536)
        _check_range("eval_batch_size", self.eval_batch_size, low=1)
        _check_range("epochs", self.epochs, low=1, high=10000)
        _check_range("width", self.width, low=1, high=2048)
        _check_range("depth", self.depth, low=1, high=5)
        _check_range("convs_per_stage", self.convs_per_stage, low=1, high=4)
        _check_range("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        _check_range("weight_decay", self.weight_decay, low=0.0)
        _check_range("label_smoothing", self.label_smoothing, low=0.0, high=1.0, high_open=True)
        _check_range("ema", self.ema, low=0.0, high=1.0, high_open=True)
        _check_range("val_fraction", self.val_fraction, low=0.0, high=0.9, low_open=True)
        _check_range("image_size", self.image_size, low=8, high=512)
        _check_range("seed", self.seed, low=0, high=SEED_LIMIT, high_open=True)
        if self.max_train_images is not None:
            _check_range("max_train_images", self.max_train_images, low=2)  # batch norm
        for key in ("data_root", "cache_dir"):
            value = getattr(self, key)
            problem = value is not None and path_problem(value, uri="://" in value)
            if problem:
                raise ConfigError(f"{key} {shorten(value)!r} {problem}")

    def resolve_paths(self) -> None:
        """Make `data_root` and `cache_dir` absolute (`~` expanded), in place.

        A trial may run in another working directory than the one the config was written in, so
        relative paths are resolved once, where the config is built.
        """
        if self.data_root is not None:
            self.data_root = os.path.abspath(os.path.expanduser(self.data_root))
        if self.cache_dir is not None and "://" not in self.cache_dir:  # a URI: shared storage
            self.cache_dir = os.path.abspath(os.path.expanduser(self.cache_dir))


def _coerce(key: str, value: Any) -> Any:
    """Convert a plain value to the field's type.

    YAML reads '3e-3' as a string and JSON gives ints for floats; both are fine here.
    """
    field = next(f for f in fields(TrialConfig) if f.name == key)
    kind = str(field.type)
    optional = "None" in kind
    if value is None:
        if optional:
            return None
        raise ConfigError(f"trial config key {key!r} must not be null")
    try:
        if kind.startswith("bool"):
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes"):
                return True
            if str(value).lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if kind.startswith("int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            if isinstance(value, str):
                return int(value)
            return int(value)
        if kind.startswith("float"):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind.startswith("str"):
            if not isinstance(value, (str, os.PathLike)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        want = kind.split(" |")[0]
        raise ConfigError(
            f"trial config key {key!r} has value {value!r}; allowed: a {want}"
            + (" or null" if optional else "")
        ) from None
    return value


def _check_choice(key: str, value: str, allowed: tuple[str, ...] | list[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {key} {value!r}; allowed: {', '.join(allowed)}")


def _check_range(
    key: str,
    value: float,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    bad = not math.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        lo = "" if low is None else f"{'>' if low_open else '>='} {_number(low)}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {_number(high)}"
        allowed = " and ".join(s for s in (lo, hi) if s)
        raise ConfigError(f"{key} {value!r} is out of range; allowed: {allowed}")


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"
