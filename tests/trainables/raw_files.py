"""Writers of the real raw formats the dataset tests read, at tiny sizes, and split helpers.

CIFAR pickles, MNIST idx files and ImageFolder JPEGs are written here in the formats the
downloads use; only the md5 sums torchvision pins for CIFAR are swapped for those of these files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from trainables.data import Splits

# Solid colours per class, so decoded pixels can be checked through JPEG and resizing.
COLOURS = {"cat": (200, 40, 40), "dog": (30, 60, 210)}  # RGB 0..255
JPEG_TOLERANCE = 10  # 0..255; JPEG chroma subsampling shifts a solid colour a little


def _pickle(path: Path, obj: dict) -> None:
    # The real files are Python 2 pickles whose str keys torchvision reads with
    # encoding="latin1", giving str keys ("data", not b"data"); protocol 2 str keys load the same.
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar(
    root: Path, monkeypatch: pytest.MonkeyPatch, hundred: bool = False
) -> dict[str, np.ndarray]:
    """Write a tiny CIFAR-10 (or -100) python version and pin torchvision to its md5 sums.

    Returns:
        The written train/test images as (N, 3, 32, 32) uint8 and labels, in file order.
    """
    from torchvision.datasets import CIFAR10, CIFAR100
    from torchvision.datasets.utils import calculate_md5

    rng = np.random.default_rng(1)
    num_classes = 100 if hundred else 10
    label_key = "fine_labels" if hundred else "labels"
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    train_files = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    per_file = 10 if hundred else 2  # 10 train images either way
    written: dict[str, list[np.ndarray]] = {
        "train_x": [],
        "train_y": [],
        "test_x": [],
        "test_y": [],
    }
    for split, files, n in (("train", train_files, per_file), ("test", ["test"], 4)):
        if split == "test" and not hundred:
            files = ["test_batch"]
        for name in files:
            rows = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)  # row-major CHW
            labels = rng.integers(0, num_classes, size=n).tolist()
            entry = {"data": rows, label_key: labels, "filenames": [f"{i}.png" for i in range(n)]}
            if hundred:
                entry["coarse_labels"] = [label // 5 for label in labels]
            _pickle(folder / name, entry)
            written[f"{split}_x"].append(rows.reshape(n, 3, 32, 32))
            written[f"{split}_y"].append(np.array(labels))
    meta_name, meta_key = (
        ("meta", "fine_label_names") if hundred else ("batches.meta", "label_names")
    )
    _pickle(folder / meta_name, {meta_key: [f"class{i}" for i in range(num_classes)]})

    cls = CIFAR100 if hundred else CIFAR10
    md5 = {path.name: calculate_md5(path) for path in folder.iterdir()}
    monkeypatch.setattr(cls, "train_list", [[f, md5[f]] for f in train_files])
    test_file = "test" if hundred else "test_batch"
    monkeypatch.setattr(cls, "test_list", [[test_file, md5[test_file]]])
    monkeypatch.setattr(
        cls, "meta", {"filename": meta_name, "key": meta_key, "md5": md5[meta_name]}
    )
    return {key: np.concatenate(parts) for key, parts in written.items()}


def write_mnist(
    root: Path, folder: str, n_train: int = 12, n_test: int = 5
) -> dict[str, np.ndarray]:
    """Write the four uncompressed big-endian idx files that torchvision reads from `<folder>/raw`.

    Returns:
        The written images (N, 28, 28) uint8 and labels.
    """
    rng = np.random.default_rng(2)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    written = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        # Magic 0x0803 / 0x0801: type 0x08 (uint8), 3 / 1 dimensions; then each size as >u4.
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes()
        )
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 2049, n) + labels.tobytes()
        )
        written[f"{prefix}_x"], written[f"{prefix}_y"] = images, labels
    return written


def write_image_folder(
    root: Path, per_class: int = 3, splits: tuple[str, ...] = ("train",), size=(40, 30)
) -> None:
    """JPEGs of an odd size (width, height) in `<root>/<split>/<class>/`, one colour per class."""
    from PIL import Image

    for split in splits:
        for name, colour in COLOURS.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", size, colour).save(folder / f"{i}.jpg", quality=95)


def assert_splits_equal(a: Splits, b: Splits) -> None:
    for field in dataclasses.fields(Splits):
        left, right = getattr(a, field.name), getattr(b, field.name)
        if isinstance(left, torch.Tensor):
            assert torch.equal(left, right), field.name
        else:
            assert left == right, field.name


def digest(splits: Splits) -> str:
    tensors = [splits.train_x, splits.train_y, splits.val_x, splits.val_y]
    return hashlib.sha256(b"".join(t.numpy().tobytes() for t in tensors)).hexdigest()


def rows_of(x: np.ndarray) -> set[bytes]:
    return {image.tobytes() for image in x}
