"""Run a search: check resources, start or join Ray, stage the data, `Tuner.fit()`, summarize.

Everything here is Ray Tune's own machinery (Tuner, TuneConfig, RunConfig, FailureConfig,
CheckpointConfig, with_resources); this module only wires a validated `SearchConfig` into it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from typing import Any

from tune.config import SearchConfig, dump_search_config
from tune.summary import Summary, TrialRecord, summarize

CONFIG_FILE = "cnn_tune_config.yaml"  # the resolved search config, kept with the experiment
CHECKPOINTS_TO_KEEP = 2  # per trial: the latest and the one before (a torn write leaves one)


class DriverError(Exception):
    """A problem that stops a search before or while it starts; carries the CLI exit code."""

    exit_code = 2


class BadInput(DriverError):
    exit_code = 2


class Unreachable(DriverError):
    """A service the search needs (a Ray cluster) could not be reached: retry later."""

    exit_code = 3


def is_remote(path: str) -> bool:
    return "://" in path


def experiment_path(cfg: SearchConfig) -> str:
    """Where Ray keeps this search's state: `<storage_path>/<name>`."""
    return f"{cfg.storage_path.rstrip('/')}/{cfg.name}"


def check_new_experiment(cfg: SearchConfig) -> None:
    """Refuse to start a search whose experiment folder already exists (exit 2)."""
    path = experiment_path(cfg)
    if not is_remote(path) and os.path.exists(path):
        raise BadInput(
            f"experiment {cfg.name!r} already exists at {path}; pick another name "
            f"(--name), or remove that folder"
        )


def check_local_resources(cfg: SearchConfig) -> None:
    """On a local Ray, a trial must fit this machine, or Ray would wait for it forever."""
    import torch

    gpus = torch.cuda.device_count()
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
    cpus = os.cpu_count() or 1
    if cfg.resources.cpus_per_trial > cpus:
        raise BadInput(
            f"resources.cpus_per_trial is {cfg.resources.cpus_per_trial:g} but this machine has "
            f"{cpus} CPU(s); allowed: <= {cpus}"
        )


def check_cluster_resources(cfg: SearchConfig) -> None:
    """Joined cluster: warn when no GPU is there now (its autoscaler may still add some)."""
    import ray

    need_gpu = cfg.resources.gpus_per_trial
    have = ray.cluster_resources().get("GPU", 0)
    if need_gpu > 0 and have < need_gpu:
        print(
            f"cnn-tune: warning: the cluster has {have:g} GPU(s) now and trials need "
            f"{need_gpu:g} each; they wait until its autoscaler adds GPU nodes (if it can)",
            file=sys.stderr,
        )


def stage_data(cfg: SearchConfig) -> None:
    """Decode (or download) the dataset once, here, before any trial: trials read the cache.

    Fails with BadInput (exit 2) when the data is missing, before Ray starts.
    """
    from trainables.config import TrialConfig
    from trainables.data import DataError, dataset_from_config

    try:
        splits = dataset_from_config(TrialConfig.from_dict(cfg.fixed_trial_config()))
    except DataError as exc:
        raise BadInput(str(exc)) from None
    print(
        f"data: {cfg.dataset} staged "
        f"({len(splits.train_y)} train / {len(splits.val_y)} val images)",
        file=sys.stderr,
    )


PROBE_TIMEOUT_S = 5.0  # seconds to wait for a TCP connection to a cluster's head


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


def start_ray(address: str | None) -> None:
    """Join the Ray cluster at `address`, else start a local Ray sized to this machine."""
    import ray

    # Trials print nothing we need on the driver's stdout (they report through Tune), and the
    # driver's stdout is reserved for the JSON summary.
    common: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        try:
            ray.init(address=address, **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise Unreachable(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local cluster needs no token
    ray.init(
        address="local",
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        # A private cluster for this driver: bind to loopback, reachable from no other host.
        _node_ip_address="127.0.0.1",
        **common,
    )


def make_tuner(cfg: SearchConfig, progress: Any):
    """Build Ray Tune's Tuner for a search."""
    from ray import tune

    from trainables.ray_trainable import train_cnn
    from tune.space import make_param_space, make_scheduler, make_searcher

    trainable = tune.with_resources(
        train_cnn, {"cpu": cfg.resources.cpus_per_trial, "gpu": cfg.resources.gpus_per_trial}
    )
    return tune.Tuner(
        trainable,
        param_space=make_param_space(cfg),
        tune_config=tune.TuneConfig(
            metric=cfg.search.metric,
            mode=cfg.search.mode,
            search_alg=make_searcher(cfg),
            scheduler=make_scheduler(cfg),
            num_samples=cfg.search.num_samples,
            max_concurrent_trials=cfg.search.max_concurrent or None,
            time_budget_s=cfg.search.time_budget_s,
        ),
        run_config=tune.RunConfig(
            name=cfg.name,
            storage_path=cfg.storage_path,
            failure_config=tune.FailureConfig(max_failures=cfg.search.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_TO_KEEP),
            callbacks=[progress],
            verbose=0,
        ),
    )


def records_from(results: Any) -> list[TrialRecord]:
    """Ray's ResultGrid -> plain records for the summary."""
    records = []
    for result in results:
        metrics = dict(result.metrics or {})
        error = None
        if result.error is not None:
            lines = [line for line in str(result.error).strip().splitlines() if line.strip()]
            error = lines[-1] if lines else type(result.error).__name__
        trial_id = metrics.get("trial_id") or os.path.basename(str(result.path))
        records.append(
            TrialRecord(
                trial_id=trial_id, config=dict(result.config or {}), metrics=metrics, error=error
            )
        )
    return records


def run_search(cfg: SearchConfig, address: str | None = None) -> Summary:
    """Run a whole search and return its summary.

    Raises:
        BadInput: the experiment exists, the data is missing, or a trial cannot fit (exit 2).
        Unreachable: the Ray cluster at `address` cannot be reached (exit 3).
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    check_new_experiment(cfg)
    if address:
        probe_address(address)
    else:
        check_local_resources(cfg)
    stage_data(cfg)

    start = time.monotonic()
    # Forced experiment snapshots after each checkpoint are what makes a resume exact; short
    # epochs trigger Ray's warning about their frequency, which says nothing useful here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Ray Tune prints its own boxes and tables on stdout; stdout is reserved for the JSON summary.
    with contextlib.redirect_stdout(sys.stderr):
        start_ray(address)
        records = fit(cfg, address)
    return summarize(
        records,
        name=cfg.name,
        epochs=cfg.epochs,
        metric=cfg.search.metric,
        mode=cfg.search.mode,
        searched_keys=sorted(cfg.space),
        wall_seconds=time.monotonic() - start,
        storage_path=cfg.storage_path,
        experiment_path=experiment_path(cfg),
        mlflow={
            "tracking_uri": cfg.mlflow.tracking_uri,
            "experiment_id": None,
            "parent_run_id": None,
        },
    )


def fit(cfg: SearchConfig, address: str | None) -> list[TrialRecord]:
    """On a started Ray: save the config with the experiment, run the Tuner, shut Ray down."""
    import ray

    from tune.progress import ProgressCallback

    try:
        if address:
            check_cluster_resources(cfg)
        if not is_remote(cfg.storage_path):
            os.makedirs(experiment_path(cfg), exist_ok=True)
            dump_search_config(cfg, os.path.join(experiment_path(cfg), CONFIG_FILE))
        progress = ProgressCallback(sorted(cfg.space), cfg.epochs, cfg.trial_count())
        print(
            f"search {cfg.name!r}: {cfg.trial_count()} trials of {cfg.dataset}, "
            f"{cfg.search.algorithm} search, {cfg.search.scheduler} scheduler, "
            f"up to {cfg.epochs} epochs",
            file=sys.stderr,
        )
        return records_from(make_tuner(cfg, progress).fit())
    finally:
        ray.shutdown()


__all__ = ["run_search", "experiment_path", "DriverError", "BadInput", "Unreachable"]
