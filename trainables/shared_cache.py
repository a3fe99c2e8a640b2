"""The cluster's copy of the decoded-dataset cache: uploaded once, copied down once per node.

A `cache_dir` that is a URI (`s3://bucket/cache`, `gs://...`, `file:///nfs/cache`) names shared
storage. The node that decodes a dataset (the driver, staging it before any trial) uploads the
checksummed file there; a node that joins later (an autoscaled GPU worker, without the raw data)
copies it into its own local cache under the cache's file lock and checks the SHA-256, instead
of decoding raw files it may not have. `pyarrow.fs` reaches the storage, as Ray's own
`storage_path` does; it is imported only for such a `cache_dir`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from trainables.files import atomic_write

log = logging.getLogger("cnn_tune.cache")

CHUNK = 8 << 20  # bytes per read while copying


def is_uri(path: str | os.PathLike[str] | None) -> bool:
    return path is not None and "://" in os.fspath(path)


def _filesystem(uri: str) -> tuple[Any, str]:
    from pyarrow import fs

    return fs.FileSystem.from_uri(uri)


def _exists(filesystem: Any, path: str) -> bool:
    from pyarrow import fs

    return filesystem.get_file_info(path).type != fs.FileType.NotFound


def remote_exists(shared: str, name: str, suffixes: tuple[str, ...]) -> bool:
    """Whether `<shared>/<name>` and each `<name><suffix>` are there."""
    filesystem, root = _filesystem(shared)
    return all(_exists(filesystem, f"{root}/{name}{s}") for s in ("", *suffixes))


def download(
    shared: str, local_path: str, suffixes: tuple[str, ...], optional: tuple[str, ...] = ()
) -> bool:
    """Copy `<shared>/<file>` and its sidecar files beside `local_path`, each atomically.

    Returns:
        False when the shared copy (or a required sidecar) is not there (yet); True once copied.
    """
    filesystem, root = _filesystem(shared)
    name = os.path.basename(local_path)
    if not all(_exists(filesystem, f"{root}/{name}{s}") for s in ("", *suffixes)):
        return False
    present = tuple(s for s in optional if _exists(filesystem, f"{root}/{name}{s}"))
    # Sidecars first, the data file last: a reader checks the data against the checksum.
    for suffix in (*suffixes, *present, ""):
        _copy_down(filesystem, f"{root}/{name}{suffix}", local_path + suffix)
    log.info(f"cnn-tune data: copied {name} from {shared}")
    return True


def upload(local_path: str, shared: str, suffixes: tuple[str, ...]) -> None:
    """Put a cache file and its sidecars on shared storage, the data file first: a reader
    checks it against the checksum, so a half-written one is never taken for a whole one."""
    filesystem, root = _filesystem(shared)
    filesystem.create_dir(root, recursive=True)
    name = os.path.basename(local_path)
    for suffix in ("", *suffixes):
        source = local_path + suffix
        if os.path.exists(source):
            with (
                open(source, "rb") as src,
                filesystem.open_output_stream(f"{root}/{name}{suffix}") as dst,
            ):
                for chunk in iter(lambda: src.read(CHUNK), b""):
                    dst.write(chunk)
    log.info(f"cnn-tune data: shared {name} in {shared}")


def _copy_down(filesystem: Any, remote: str, local: str) -> None:
    folder = os.path.dirname(local)
    os.makedirs(folder, exist_ok=True)
    with atomic_write(local, binary=True) as dst, filesystem.open_input_stream(remote) as src:
        while chunk := src.read(CHUNK):
            dst.write(chunk)
