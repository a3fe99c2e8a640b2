"""The checks that run before a search creates anything: storage, resources, Ray, MLflow.

Each raises `BadInput` (exit 2) or `Unreachable` (exit 3) with one line that names the problem,
so bad input never leaves a half-made experiment behind.
"""

from __future__ import annotations

import os
import socket

from tune.config import SearchConfig
from tune.errors import BadInput, Unreachable
from tune.logs import get_logger
from tune.machine import usable_cpus, usable_gpus
from tune.paths import is_remote
from tune.space import domain_values

log = get_logger("checks")

PROBE_TIMEOUT_S = 5.0  # seconds to wait for a TCP connection to a cluster's head


def check_storage_path(cfg: SearchConfig) -> None:
    """A local storage path must exist or be creatable (not under a regular file, writable)."""
    if is_remote(cfg.storage_path):
        return
    probe = cfg.storage_path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK):
        raise BadInput(
            f"storage_path {cfg.storage_path} cannot be created: {probe} is not a writable folder"
        )


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
    from tune.store import probe_tracking

    probe_tracking(tracking_uri)
