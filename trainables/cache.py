"""The decoded-dataset cache: one checksummed `torch.save` file per dataset, built once per node.

A builder's `Decoded` arrays go into `<cache_dir>/<name>-<hash>.pt`, written atomically with its
SHA-256 beside it and guarded by a file lock, so the trials of a search that start together on one
machine decode (or download) once and then all read the cached file. filelock is imported only
when a file must be built.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from typing import Any

import torch

from trainables import shared_cache
from trainables.datasets import DATASETS, BuildRequest, Decoded, make_request
from trainables.files import atomic_write, replaced_atomically, sha256_file, sha256_of

log = logging.getLogger("cnn_tune.cache")

# Bump when what a builder stores changes (layout, keys, decode method): old cache files are
# then simply not found again, and are rebuilt under the new name.
FORMAT_VERSION = 1
# Beside a cache file of a dataset whose files are edited in place (an ImageFolder): the
# fingerprint of the raw files it was decoded from. Changed files are decoded again; a node that
# cannot read them at all (a cluster worker without the raw data) uses the cache as it is.
SOURCE_SUFFIX = ".source"
CHECKSUM_SUFFIX = ".sha256"  # beside each cache file: the hex SHA-256 of its bytes

# The tensor fields of `Decoded`, stored under these keys when set.
_TENSORS = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")


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


def file_for(req: BuildRequest, cache_dir: str | os.PathLike[str] | None) -> str:
    """The cache file of a checked request (`make_request`): `<cache_dir>/<name>-<hash>.pt`.

    The hash covers the name, the resolved root, `FORMAT_VERSION` and the spec's `decode_keys`.
    What the raw files held (a spec's fingerprint) is kept beside the file (`SOURCE_SUFFIX`).
    """
    spec = DATASETS[req.name]
    key = {"name": req.name, "data_root": req.data_root, "format": FORMAT_VERSION}
    key.update({k: getattr(req, k) for k in spec.decode_keys})
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    if cache_dir is None or shared_cache.is_uri(cache_dir):
        folder = default_cache_dir()  # a URI is the shared copy; each node keeps its own
    else:
        folder = os.path.abspath(os.path.expanduser(os.fspath(cache_dir)))
    return os.path.join(folder, f"{req.name}-{digest}.pt")


def cache_path(
    name: str, data_root: str | None, image_size: int, image_mode: str, cache_dir: str | None = None
) -> str:
    """The file that holds (or will hold) the decoded tensors of one dataset.

    Args:
        name: a key of `trainables.datasets.DATASETS`.
        data_root: the raw data folder; resolved to an absolute path, ignored when not needed.
        image_size: pixels; part of the key only for datasets that resize (imagefolder).
        image_mode: "RGB" or "L"; part of the key only for imagefolder.
        cache_dir: the cache folder; None: `default_cache_dir()`.

    Returns:
        An absolute path `<cache_dir>/<name>-<hash>.pt`.
    """
    return file_for(make_request(name, data_root, False, image_size, image_mode), cache_dir)


def _to_state(decoded: Decoded) -> dict[str, Any]:
    """A plain dict of tensors and a list of str, loadable with `weights_only=True`."""
    state: dict[str, Any] = {"format_version": FORMAT_VERSION, "classes": list(decoded.classes)}
    for key in _TENSORS:
        value = getattr(decoded, key)
        if value is not None:
            state[key] = value.contiguous()
    return state


def _from_state(state: dict[str, Any]) -> Decoded:
    """Inverse of `_to_state`."""
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"cache format {state.get('format_version')} != {FORMAT_VERSION}")
    return Decoded(classes=list(state["classes"]), **{k: state.get(k) for k in _TENSORS})


def _read_cache(path: str) -> Decoded | None:
    """The cached arrays, or None when the file is missing, damaged or unreadable (then rebuilt).

    The file's SHA-256 is checked against the one written beside it, so a cache that another
    node or a full disk left damaged is rebuilt instead of training on garbage.
    """
    if not os.path.exists(path):
        return None
    try:
        with open(path + CHECKSUM_SUFFIX) as f:
            expected = f.read().strip()
        # Hashed in chunks and loaded from the same open file: the file's bytes are never held
        # in memory beside the tensors (the memory check in `datasets` counts on that).
        with open(path, "rb") as f:
            if sha256_of(f) != expected:
                raise ValueError("checksum mismatch")
            f.seek(0)
            state = torch.load(f, map_location="cpu", weights_only=True)
        return _from_state(state)
    except Exception as err:  # a stale format or a damaged file: rebuild rather than fail
        log.info(
            f"cnn-tune data: ignoring unreadable cache file {path} ({type(err).__name__}: {err})"
        )
        return None


def _write_atomic(path: str, data: bytes) -> None:
    """Readers see either no file or a whole one, never a partial write (0o644: other readers
    on the node need it too)."""
    with atomic_write(path, binary=True, durable=True) as f:
        f.write(data)


def _write_cache(path: str, decoded: Decoded) -> None:
    """Write the arrays and their SHA-256, each atomically (checksum first: a file without one
    is rebuilt). The arrays are saved straight to disk, never serialized in memory."""
    with replaced_atomically(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(_to_state(decoded), f)
            f.flush()
            os.fsync(f.fileno())
        _write_atomic(path + CHECKSUM_SUFFIX, sha256_file(tmp).encode() + b"\n")


def _from_same_source(path: str, source: str | None) -> bool:
    """Whether the cache file was decoded from the raw files as they are now. True when they
    cannot be read here (`source` None): the cache is all this node has."""
    if source is None:
        return True
    try:
        with open(path + SOURCE_SUFFIX) as f:
            return f.read().strip() == source
    except OSError:
        return False


def _share(path: str, shared: str) -> None:
    """Put a local cache file on shared storage unless it is there already."""
    if not shared_cache.remote_exists(shared, os.path.basename(path), (CHECKSUM_SUFFIX,)):
        shared_cache.upload(path, shared, (SOURCE_SUFFIX, CHECKSUM_SUFFIX))


def _copy_from(shared: str, path: str) -> Decoded | None:
    """The shared copy, brought into the local cache and checked; None when there is none."""
    if not shared_cache.download(shared, path, (CHECKSUM_SUFFIX,), optional=(SOURCE_SUFFIX,)):
        return None
    return _read_cache(path)


def load_or_build(req: BuildRequest, path: str, shared: str | None = None) -> Decoded:
    """Read the cache file, or build it once per node while other processes wait for it.

    Args:
        req: a checked request (`make_request`).
        path: its cache file (`file_for`).
        shared: a URI on shared storage (`trainables.shared_cache`): a missing file is copied
            from there before it is built, and a built one is put there for the other nodes.

    Returns:
        The decoded arrays, read from `path` or built by the dataset's builder and written there.
    """
    fingerprint = DATASETS[req.name].fingerprint
    source = fingerprint(req) if fingerprint is not None else None
    cached = _read_cache(path)  # fast path: no lock once the file exists
    if cached is not None and _from_same_source(path, source):
        if shared is not None:
            _share(path, shared)
        return cached
    from filelock import FileLock, Timeout

    os.makedirs(os.path.dirname(path), exist_ok=True)
    lock = FileLock(path + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info(f"cnn-tune data: waiting for another process to build {path}")
        lock.acquire()
    try:
        cached = _read_cache(path)  # the process we waited for has built it
        if cached is not None and _from_same_source(path, source):
            return cached
        if cached is None and shared is not None:
            cached = _copy_from(shared, path)
            if cached is not None and _from_same_source(path, source):
                return cached
        if cached is not None:
            log.info(f"cnn-tune data: the files behind {path} changed; decoding them again")
        start = time.perf_counter()
        decoded = DATASETS[req.name].build(req)
        _write_cache(path, decoded)
        if source is not None:
            _write_atomic(path + SOURCE_SUFFIX, source.encode())
        if shared is not None:
            shared_cache.upload(path, shared, (SOURCE_SUFFIX, CHECKSUM_SUFFIX))
        log.info(
            f"cnn-tune data: cached {req.name} in {path} ({time.perf_counter() - start:.1f} s)"
        )
        return decoded
    finally:
        lock.release()
