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
from dataclasses import dataclass, field
from typing import Any

import yaml

from tune.config import SearchConfig, dump_search_config
from tune.summary import Summary, TrialRecord, summarize
from tune.tracking import Tracker, TrackingUnreachable, make_callback, probe_tracking

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


def make_tuner(cfg: SearchConfig, callbacks: list[Any]):
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
            callbacks=callbacks,
            verbose=0,
        ),
    )


@dataclass
class FitOutcome:
    """What a finished `Tuner.fit()` leaves for the summary and the tracking artifacts."""

    records: list[TrialRecord]
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # per-epoch results
    checkpoints: dict[str, Any] = field(default_factory=dict)  # trial id -> latest Checkpoint


def outcome_from(results: Any) -> FitOutcome:
    """Ray's ResultGrid -> plain records, per-epoch histories and latest checkpoints."""
    outcome = FitOutcome(records=[])
    for result in results:
        metrics = dict(result.metrics or {})
        error = None
        if result.error is not None:
            lines = [line for line in str(result.error).strip().splitlines() if line.strip()]
            error = lines[-1] if lines else type(result.error).__name__
        trial_id = metrics.get("trial_id") or os.path.basename(str(result.path))
        outcome.records.append(
            TrialRecord(
                trial_id=trial_id, config=dict(result.config or {}), metrics=metrics, error=error
            )
        )
        frame = result.metrics_dataframe
        if frame is not None and "epoch" in frame:
            by_epoch = {int(row["epoch"]): row for row in frame.to_dict("records")}
            outcome.histories[trial_id] = [by_epoch[e] for e in sorted(by_epoch)]
        outcome.checkpoints[trial_id] = result.checkpoint
    return outcome


def state_dir(cfg: SearchConfig) -> str:
    """cnn-tune's own files for an experiment (config copy, MLflow run map): the experiment
    folder when storage is local, else a local folder keyed by the experiment name."""
    if not is_remote(cfg.storage_path):
        return experiment_path(cfg)
    from trainables.data import default_cache_dir

    return os.path.join(default_cache_dir(), "state", cfg.name)


def start_tracking(cfg: SearchConfig) -> Tracker:
    """Create (or reattach to) the search's parent run before any trial starts."""
    tracker = Tracker(cfg.mlflow.tracking_uri, cfg.mlflow.experiment, state_dir(cfg))
    config_yaml = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    try:
        tracker.start_search(cfg, config_yaml)
    except TrackingUnreachable as exc:
        raise Unreachable(str(exc)) from None
    return tracker


def _warn_on_failure(what: str, fn: Any, *args: Any) -> Any:
    # Artifacts are a view of the results; failing to make one must not fail the search.
    try:
        return fn(*args)
    except Exception as exc:
        print(f"cnn-tune: warning: {what} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


def finish_tracking(
    tracker: Tracker, cfg: SearchConfig, summary: Summary, outcome: FitOutcome
) -> None:
    """Close every run and log the end-of-search artifacts (curves, best model, plots)."""
    from trainables.ray_trainable import load_checkpoint_state
    from tune.artifacts import log_best_model, log_search_plots, log_trial_curves

    tracker.close_open_trials("interrupted")
    _warn_on_failure("logging learning curves", log_trial_curves, tracker, outcome.histories)
    best = summary.best
    checkpoint = outcome.checkpoints.get(best["trial_id"]) if best else None
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = load_checkpoint_state(directory)
        state["trial_id"] = best["trial_id"]
        timings = _warn_on_failure(
            "logging the best model", log_best_model, tracker, state, cfg.mlflow.registered_model
        )
        if timings:
            print(
                f"mlflow: best model logged in {timings['log_model_s']:.1f}s "
                f"(confusion matrices {timings['confusion_s']:.1f}s)",
                file=sys.stderr,
            )
    _warn_on_failure("logging search plots", log_search_plots, tracker, summary, cfg)
    headline = {"best_val_acc": best["val_acc"], "test_acc": best.get("test_acc")} if best else {}
    tracker.finish_search(headline, "FINISHED" if summary.exit_code == 0 else "FAILED")


def run_search(cfg: SearchConfig, address: str | None = None) -> Summary:
    """Run a whole search and return its summary.

    Raises:
        BadInput: the experiment exists, the data is missing, or a trial cannot fit (exit 2).
        Unreachable: the Ray cluster or the tracking server cannot be reached (exit 3).
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    check_new_experiment(cfg)
    if address:
        probe_address(address)
    else:
        check_local_resources(cfg)
    stage_data(cfg)
    probe_tracking_or_fail(cfg)

    os.makedirs(state_dir(cfg), exist_ok=True)
    dump_search_config(cfg, os.path.join(state_dir(cfg), CONFIG_FILE))
    tracker = start_tracking(cfg)
    start = time.monotonic()
    # Forced experiment snapshots after each checkpoint are what makes a resume exact; short
    # epochs trigger Ray's warning about their frequency, which says nothing useful here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    try:
        # Ray Tune prints its own boxes and tables on stdout: stdout is the JSON summary's.
        with contextlib.redirect_stdout(sys.stderr):
            start_ray(address)
            outcome = fit(cfg, address, tracker)
    except BaseException:
        tracker.close_open_trials("interrupted")
        tracker.finish_search({}, "KILLED")
        raise
    summary = summarize(
        outcome.records,
        name=cfg.name,
        epochs=cfg.epochs,
        metric=cfg.search.metric,
        mode=cfg.search.mode,
        searched_keys=sorted(cfg.space),
        wall_seconds=time.monotonic() - start,
        storage_path=cfg.storage_path,
        experiment_path=experiment_path(cfg),
    )
    with contextlib.redirect_stdout(sys.stderr):  # MLflow prints model-logging notes
        finish_tracking(tracker, cfg, summary, outcome)
    summary.mlflow = tracker.info()
    trial_seconds = sum(h.get("epoch_seconds", 0) for hs in outcome.histories.values() for h in hs)
    share = tracker.seconds / trial_seconds if trial_seconds else None
    summary.mlflow["logging_share"] = round(share, 4) if share is not None else None
    print(
        f"mlflow: parent run {summary.mlflow['parent_run_id']} in {cfg.mlflow.tracking_uri}; "
        f"logging while trials ran took {tracker.seconds:.2f}s on the driver "
        f"({100 * (share or 0):.2f}% of {trial_seconds:.0f}s of trial time), "
        f"end-of-search artifacts {tracker.artifact_seconds:.1f}s",
        file=sys.stderr,
    )
    return summary


def probe_tracking_or_fail(cfg: SearchConfig) -> None:
    try:
        probe_tracking(cfg.mlflow.tracking_uri)
    except TrackingUnreachable as exc:
        raise Unreachable(str(exc)) from None


def fit(cfg: SearchConfig, address: str | None, tracker: Tracker) -> FitOutcome:
    """On a started Ray: run the Tuner with progress and MLflow callbacks; shut Ray down."""
    import ray

    from tune.progress import ProgressCallback

    try:
        if address:
            check_cluster_resources(cfg)
        progress = ProgressCallback(sorted(cfg.space), cfg.epochs, cfg.trial_count())
        mlflow_cb = make_callback(tracker, cfg.epochs, cfg.search.time_budget_s)
        print(
            f"search {cfg.name!r}: {cfg.trial_count()} trials of {cfg.dataset}, "
            f"{cfg.search.algorithm} search, {cfg.search.scheduler} scheduler, "
            f"up to {cfg.epochs} epochs",
            file=sys.stderr,
        )
        return outcome_from(make_tuner(cfg, [progress, mlflow_cb]).fit())
    finally:
        ray.shutdown()


__all__ = ["run_search", "experiment_path", "DriverError", "BadInput", "Unreachable"]
