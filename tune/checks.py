"""The checks that run before a search creates anything: storage, resources, Ray, MLflow.

Each raises `BadInput` (exit 2) or `Unreachable` (exit 3) with one line that names the problem,
so bad input never leaves a half-made experiment behind.
"""

from __future__ import annotations

import os
import socket
import tempfile

from tune.config.schema import SearchConfig
from tune.config.space import domain_values
from tune.errors import BadInput, Unreachable
from tune.logs import get_logger
from tune.machine import usable_cpus, usable_gpus
from tune.paths import is_remote, sqlite_file

log = get_logger("checks")

PROBE_TIMEOUT_S = 5.0  # seconds to wait for a TCP connection to a cluster's head


def check_paths(cfg: SearchConfig) -> None:
    """Every path setting of a search, usable as the search will use it (exit 2, one line,
    before anything is created): `storage_path`, `cache_dir` (or the default cache),
    `data_root`, and the SQLite file of an embedded tracking store."""
    from trainables.cache import default_cache_dir

    if not is_remote(cfg.storage_path):
        check_folder("storage_path", cfg.storage_path)
    if cfg.cache_dir is None:
        check_folder("cache_dir", default_cache_dir(), note=" (the default cache)")
    elif not is_remote(cfg.cache_dir):
        check_folder("cache_dir", cfg.cache_dir)
    if cfg.data_root is not None and not is_remote(cfg.data_root):
        download = bool(cfg.fixed_trial_config().get("download"))
        check_folder("data_root", cfg.data_root, write=download, create=download)
    check_sqlite_file("mlflow.tracking_uri", cfg.mlflow.tracking_uri)


def check_folder(
    key: str, path: str, write: bool = True, create: bool = True, note: str = ""
) -> None:
    """A folder setting: an existing folder, or one that can be created; with `write`,
    writable. Writability is tried for real (a probe folder made and removed at once):
    root ignores file modes, and only a write tells a read-only filesystem or /proc.

    With `create=False` a missing folder is left to its reader (the dataset loaders say
    what is missing and how to get it).

    Raises:
        BadInput (exit 2): one line naming the key, the path and the reason.
    """
    probe = path
    while not os.path.lexists(probe):
        if not create:
            return
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        reason = "is not a folder"
        if probe != path:
            reason = f"cannot be created: {probe} is not a folder"
        raise BadInput(f"{key} {path}{note} {reason}")
    if not write:
        if not os.access(probe, os.R_OK | os.X_OK):
            raise BadInput(f"{key} {path}{note} is not readable")
        return
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".cnn-tune-probe-", dir=probe))
    except OSError as exc:
        reason = "is not writable" if probe == path else f"cannot be created in {probe}"
        raise BadInput(f"{key} {path}{note} {reason} ({exc.strerror or exc})") from None


def check_sqlite_file(key: str, tracking_uri: str) -> None:
    """An embedded SQLite store: its file must be a writable file, or creatable in a writable
    folder (SQLite writes its journal beside it)."""
    db = sqlite_file(tracking_uri)
    if db is None:
        return
    db = os.path.abspath(db)
    if os.path.isdir(db):
        raise BadInput(f"{key}: {db} is a folder, not a SQLite database file")
    check_folder(key, os.path.dirname(db), note=f" (the folder of {os.path.basename(db)})")
    if os.path.exists(db) and not os.access(db, os.W_OK):
        raise BadInput(f"{key}: {db} is not writable")


def check_batch_size(cfg: SearchConfig, train_images: int) -> None:
    """Every batch size a trial can draw must fit in the training set."""
    from trainables.config import TrialConfig

    default = cfg.trial.get("batch_size", TrialConfig.batch_size)
    sizes = domain_values(cfg.space.get("batch_size"), default)
    cap = cfg.trial.get("max_train_images") or train_images
    usable = min(train_images, cap)
    too_big = [b for b in sizes if int(b) > usable]
    if too_big:
        raise BadInput(
            f"batch_size {too_big[0]} is larger than the {usable} training images of "
            f"{cfg.dataset}; allowed: <= {usable}"
        )


def check_local_resources(cfg: SearchConfig) -> None:
    """On a private local Ray, a trial must fit the CPUs and GPUs this process may use, or Ray
    would wait for it forever."""
    gpus = usable_gpus()
    need_gpu = cfg.resources.gpus_per_trial
    if need_gpu > 0 and gpus == 0:
        raise BadInput(
            f"resources.gpus_per_trial is {need_gpu:g} but this machine has no GPU; "
            "allowed: 0 here, or join a GPU cluster with --address"
        )
    if need_gpu > gpus:
        raise BadInput(
            f"resources.gpus_per_trial is {need_gpu:g} but this machine has {gpus} GPU(s); "
            f"allowed: <= {gpus}"
        )
    usable = usable_cpus()
    cpus = local_ray_cpus(cfg)
    if cfg.resources.local_cpus is not None and cfg.resources.local_cpus > usable:
        raise BadInput(
            f"resources.local_cpus is {cfg.resources.local_cpus:g} but this process may use "
            f"{usable} CPU(s) (affinity and cgroup limits); allowed: <= {usable}"
        )
    if cfg.resources.cpus_per_trial > cpus:
        raise BadInput(
            f"resources.cpus_per_trial is {cfg.resources.cpus_per_trial:g} but the local Ray has "
            f"{cpus} CPU(s) (resources.local_cpus, else the CPUs this process may use); "
            f"allowed: <= {cpus}"
        )


def local_ray_cpus(cfg: SearchConfig) -> int:
    """The size of a private local Ray: `resources.local_cpus`, else every usable CPU."""
    if cfg.resources.local_cpus is not None:
        return int(cfg.resources.local_cpus)
    return usable_cpus()


def check_cluster_resources(cfg: SearchConfig) -> None:
    """Joined cluster: warn when no GPU is there now (its autoscaler may still add some)."""
    import ray

    need_gpu = cfg.resources.gpus_per_trial
    have = ray.cluster_resources().get("GPU", 0)
    if need_gpu > 0 and have < need_gpu:
        log.warning(
            f"the cluster has {have:g} GPU(s) now and trials need "
            f"{need_gpu:g} each; they wait until its autoscaler adds GPU nodes (if it can)"
        )


def probe_address(address: str) -> None:
    """Fail fast (exit 3) when nothing listens at a cluster address.

    `ray.init` would retry an unreachable GCS for minutes; a scheduled job should rather
    exit 3 at once and retry later. `auto` (find a cluster on this node) is left to Ray.
    """
    if address in ("auto", "local"):
        return
    host_port = address.split("://", 1)[-1]
    host, sep, port = host_port.rpartition(":")
    if not sep or not port.isdigit():
        raise BadInput(f"--address {address!r} is not HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise Unreachable(f"cannot reach the Ray cluster at {address!r}: {exc}") from None


def probe_tracking_store(tracking_uri: str) -> None:
    """Fail fast (exit 3) when an http(s) tracking server does not answer."""
    from tune.tracking import probe_tracking

    probe_tracking(tracking_uri)
