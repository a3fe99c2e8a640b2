"""A dataset ready for a trial: the cached arrays with a fixed validation split, as `Splits`.

Every dataset comes back as `Splits`: CPU uint8 images (N, C, H, W) and int64 labels, small enough
to live on the GPU whole (airbench style) and cheap to normalize/augment there in batches. The
arrays come from `trainables.cache` (decoded once per node by a `trainables.datasets` builder);
the val split is drawn after loading with a fixed generator, so it is the same for every trial
whatever its seed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from trainables import cache, shared_cache
from trainables.datasets import DataError, make_request

if TYPE_CHECKING:
    from trainables.config import TrialConfig

__all__ = ["DataError", "Splits", "dataset_from_config", "load_dataset", "split_val"]

# The val split is drawn with this seed, never the trial's: every trial of a search (and every
# call) must validate on the same images for their scores to be comparable.
VAL_SPLIT_SEED = 0


@dataclass(frozen=True)
class Splits:
    """One dataset, decoded: images as uint8 (N, C, H, W) on the CPU, labels as int64 (N,).

    Read-only: `load_dataset(keep=True)` hands the same tensors to every such call in a process.
    """

    train_x: torch.Tensor  # (N_train, C, H, W) uint8
    train_y: torch.Tensor  # (N_train,) int64 in [0, num_classes)
    val_x: torch.Tensor  # (N_val, C, H, W) uint8
    val_y: torch.Tensor  # (N_val,) int64
    test_x: torch.Tensor | None  # (N_test, C, H, W) uint8; None when the dataset has no test split
    test_y: torch.Tensor | None  # (N_test,) int64
    classes: list[str]  # class names, index = label

    def __post_init__(self) -> None:
        # Cheap shape checks: a builder bug should fail here, not as a cryptic batch error later.
        pairs = [("train", self.train_x, self.train_y), ("val", self.val_x, self.val_y)]
        if self.test_x is not None or self.test_y is not None:
            pairs.append(("test", self.test_x, self.test_y))
        for split, x, y in pairs:
            if x is None or y is None or x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
                raise DataError(f"{split} split: want images (N, C, H, W), labels (N,)")
            if x.dtype != torch.uint8 or y.dtype != torch.int64:
                raise DataError(f"{split} split has dtypes {x.dtype}/{y.dtype}; want uint8/int64")
            if x.shape[1:] != self.train_x.shape[1:]:
                raise DataError(
                    f"{split} images are {tuple(x.shape[1:])}, train images are "
                    f"{tuple(self.train_x.shape[1:])}"
                )

    @property
    def channels(self) -> int:
        """Image channels C: 3 for RGB, 1 for grayscale."""
        return int(self.train_x.shape[1])

    @property
    def num_classes(self) -> int:
        """Number of classes, which is the classifier's output width."""
        return len(self.classes)


def split_val(
    x: torch.Tensor, y: torch.Tensor, val_fraction: float, name: str
) -> tuple[torch.Tensor, ...]:
    """Hold out `round(val_fraction * N)` (at least 1) train images, the same ones every call.

    Args:
        x: images (N, ...), or any tensor indexed like them (indices, for a benchmark).
        y: labels (N,).
        val_fraction: share of the N images to hold out; 0 < val_fraction < 1.
        name: the dataset, for the error message.

    Returns:
        train_x, train_y, val_x, val_y; each split keeps the original order.

    Raises:
        DataError: when the fraction leaves no train or no val images.
    """
    n = len(x)
    n_val = max(1, round(val_fraction * n))
    if not 0.0 < val_fraction < 1.0 or n_val >= n:
        raise DataError(
            f"dataset {name!r}: val_fraction {val_fraction!r} of {n} train images "
            f"leaves no train or no val images; allowed: 0 < val_fraction < 1"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(VAL_SPLIT_SEED))
    val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def load_dataset(
    name: str,
    data_root: str | None = None,
    download: bool = False,
    cache_dir: str | None = None,
    image_size: int = 32,
    image_mode: str = "RGB",
    val_fraction: float = 0.1,
    keep: bool = False,
) -> Splits:
    """Load a dataset by registry name as uint8 tensors, decoding it at most once per cache dir.

    Args:
        name: a key of `trainables.datasets.DATASETS`.
        data_root: the raw data folder (torchvision root, ImageFolder root); required for every
            dataset but mnist5k. Resolved to an absolute path.
        download: let torchvision download a missing dataset into `data_root`.
        cache_dir: where decoded tensors are cached; None: `cache.default_cache_dir()`.
        image_size: pixels; ImageFolder images are resized to (image_size, image_size). The
            other datasets keep their native size.
        image_mode: "RGB" (3 channels) or "L" (1 channel); applies to ImageFolder only.
        val_fraction: share of train held out for validation when the dataset has no val split
            (a fixed draw, whatever the trial's seed). Ignored by mnist5k, which has fixed
            500-image val and test splits, and by an ImageFolder root with a val/ folder.
        keep: hold the result in this process for the next `keep` call on the same cache
            file (a reused Ray worker's next trial); one dataset at a time.

    Returns:
        `Splits` with CPU uint8 images (N, C, H, W) and int64 labels.

    Raises:
        DataError: unknown name, missing data_root, dataset not found, too big for memory, ...
    """
    req = make_request(name, data_root, download, image_size, image_mode)
    path = cache.file_for(req, cache_dir)
    held = _last_loaded.get((path, val_fraction)) if keep else None
    if held is not None and held[0] == _file_identity(path):
        return held[1]
    shared = os.fspath(cache_dir) if shared_cache.is_uri(cache_dir) else None
    decoded = cache.load_or_build(req, path, shared)
    if decoded.val_x is None or decoded.val_y is None:
        train_x, train_y, val_x, val_y = split_val(
            decoded.train_x, decoded.train_y, val_fraction, name
        )
    else:
        train_x, train_y = decoded.train_x, decoded.train_y
        val_x, val_y = decoded.val_x, decoded.val_y
    splits = Splits(
        train_x, train_y, val_x, val_y, decoded.test_x, decoded.test_y, list(decoded.classes)
    )
    if keep:
        _last_loaded.clear()  # one dataset at a time: what a worker holds is what its trial uses
        _last_loaded[(path, val_fraction)] = (_file_identity(path), splits)
    return splits


# A reused Ray worker runs trial after trial on one dataset: with `keep`, the last one loaded stays
# in memory, keyed by its cache file and that file's identity, so later trials skip reading,
# hashing and splitting it (0.3-0.6 s per trial for CIFAR-10 here). A rebuilt file has a new
# identity and is read again. The tensors are shared between those calls: callers treat them as
# read-only. Only trials keep: the driver would hold a dataset for a whole search.
_last_loaded: dict[tuple[str, float], tuple[tuple[int, int, int] | None, Splits]] = {}


def _file_identity(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def dataset_from_config(cfg: TrialConfig, keep: bool = False) -> Splits:
    """`load_dataset` with the data fields of a trial config (`max_train_images` is not applied).

    Args:
        cfg: the trial config.
        keep: see `load_dataset`.

    Returns:
        The dataset's `Splits`.
    """
    return load_dataset(
        cfg.dataset,
        data_root=cfg.data_root,
        download=cfg.download,
        cache_dir=cfg.cache_dir,
        image_size=cfg.image_size,
        image_mode=cfg.image_mode,
        val_fraction=cfg.val_fraction,
        keep=keep,
    )
