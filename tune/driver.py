"""Run or resume a search: check everything, lock the experiment, start or join Ray, stage the
data, `Tuner.fit()` (or `Tuner.restore()`), summarize, and close the MLflow runs.

Everything here is Ray Tune's own machinery (Tuner, TuneConfig, RunConfig, FailureConfig,
CheckpointConfig, with_resources, Tuner.restore); this module only wires a validated
`SearchConfig` into it. Checks run cheapest first and all before anything is created, so bad
input never leaves a half-made experiment behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import yaml

from tune.checks import (
    check_batch_size,
    check_cluster_resources,
    check_local_resources,
    check_storage_path,
    probe_address,
    stage_data,
)
from tune.config import SearchConfig, dump_search_config, redact_uri
from tune.errors import BadInput, DriverError, Locked, Unreachable
from tune.lock import ExperimentLocked, experiment_lock, is_locked
from tune.paths import experiment_path, is_remote
from tune.summary import Summary, TrialRecord, summarize
from tune.tracking import Tracker, TrackingUnreachable, make_callback, probe_tracking

CONFIG_FILE = "cnn_tune_config.yaml"  # the resolved search config, kept with the experiment
CHECKPOINTS_TO_KEEP = 2  # per trial: the latest and the one before (a torn write leaves one)


# What `run` does when the experiment folder already exists.
IF_EXISTS = ("refuse", "resume", "overwrite")


def experiment_exists(cfg: SearchConfig) -> bool:
    """Whether this experiment was started before (its config copy is in the state folder)."""
    return os.path.exists(os.path.join(state_dir(cfg), CONFIG_FILE)) or (
        not is_remote(cfg.storage_path) and os.path.exists(experiment_path(cfg))
    )


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
        # No dashboard web server on a private local Ray. (Ray 2.60's own gRPC ports still
        # listen on all interfaces; it maps 127.0.0.1 to the node IP. README says so.)
        include_dashboard=False,
        **common,
    )


def make_trainable(cfg: SearchConfig) -> Any:
    from ray import tune

    from trainables.ray_trainable import train_cnn

    return tune.with_resources(
        train_cnn, {"cpu": cfg.resources.cpus_per_trial, "gpu": cfg.resources.gpus_per_trial}
    )


def restore_tuner(cfg: SearchConfig, callbacks: list[Any], retry_errored: bool) -> Any:
    """`Tuner.restore` with the searcher's and scheduler's saved state.

    Finished trials are kept, unfinished ones continue from their latest checkpoints, and
    errored ones (which used up max_failures) stay errored unless `retry_errored`.
    """
    from ray import tune

    tuner = tune.Tuner.restore(
        experiment_path(cfg),
        trainable=make_trainable(cfg),
        resume_unfinished=True,
        resume_errored=retry_errored,
    )
    # The saved RunConfig carries the callbacks of the driver that died; ours write to this
    # driver's tracker and stderr. Ray offers no public setter for them on restore.
    tuner._local_tuner._run_config.callbacks = callbacks
    return tuner


def make_tuner(cfg: SearchConfig, callbacks: list[Any]) -> Any:
    """Build Ray Tune's Tuner for a new search."""
    from ray import tune

    from tune.space import make_param_space, make_scheduler, make_searcher

    trainable = make_trainable(cfg)
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
            # A trial's worker process (torch imported, data cached in memory) runs the next
            # trial: starting a fresh one cost ~4 s per trial, more than a demo epoch.
            reuse_actors=True,
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
    ran_anything: bool = False  # whether any trial reported during this fit
    statuses: dict[str, str] = field(default_factory=dict)  # trial id -> Ray's trial status

    def unfinished(self) -> list[str]:
        """Trials Ray did not end (an interrupted search): neither TERMINATED nor ERROR."""
        return [t for t, s in self.statuses.items() if s not in ("TERMINATED", "ERROR")]


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


def saved_statuses(path: str) -> dict[str, str]:
    """Each trial's status as saved in the experiment state: what a restore would see.

    After Ctrl-C/SIGTERM, Ray ends the running trials in memory (TERMINATED) but saves them
    as PENDING, to be continued; the saved view is the one that tells an interruption.
    """
    from ray.tune import ExperimentAnalysis

    return {t.trial_id: t.status for t in ExperimentAnalysis(path).trials}


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
    shown = cfg.to_dict()
    shown["mlflow"]["tracking_uri"] = redact_uri(cfg.mlflow.tracking_uri)  # no password in MLflow
    config_yaml = yaml.safe_dump(shown, sort_keys=False)
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


def run_search(cfg: SearchConfig, address: str | None = None, if_exists: str = "refuse") -> Summary:
    """Run a search (or resume / overwrite an existing one) and return its summary.

    Args:
        cfg: the validated search config.
        address: a Ray cluster to join; default $RAY_ADDRESS, else a local Ray.
        if_exists: what to do when the experiment exists: refuse (exit 2), resume it (with
            the config saved in it), or overwrite it (start afresh).

    Raises:
        BadInput (2), Unreachable (3), Locked (4).
    """
    check_storage_path(cfg)
    if experiment_exists(cfg):
        if is_locked(state_dir(cfg)):
            raise Locked(f"experiment {cfg.name!r} is already being driven by another live process")
        if if_exists == "refuse":
            raise BadInput(
                f"experiment {cfg.name!r} already exists at {experiment_path(cfg)}; resume it "
                "(cnn-tune resume, or run --resume-if-exists), start afresh (--overwrite), "
                "or pick another name (--name)"
            )
        if if_exists == "resume":
            saved = load_saved_config(cfg.storage_path, cfg.name)
            if saved.to_dict() != cfg.to_dict():
                print(
                    f"cnn-tune: warning: resuming {cfg.name!r} with the config saved in its "
                    "experiment folder, not the one given",
                    file=sys.stderr,
                )
            return drive(saved, address, restore=True)
        return drive(cfg, address, restore=False, overwrite=True)
    return drive(cfg, address, restore=False)


def resume_search(
    name: str, storage_path: str, address: str | None = None, retry_errored: bool = False
) -> Summary:
    """Continue an interrupted search from its experiment folder (config read from there)."""
    cfg = load_saved_config(storage_path, name)
    return drive(cfg, address, restore=True, retry_errored=retry_errored)


def load_saved_config(storage_path: str, name: str) -> SearchConfig:
    from tune.config import SearchConfigError, load_search_config

    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}", name):
        raise BadInput(f"experiment name {name!r} is not a valid name; allowed: [A-Za-z0-9._-]")
    stub = SearchConfig(name=name, dataset="mnist5k", space={}, storage_path=storage_path)
    path = os.path.join(state_dir(stub), CONFIG_FILE)
    if not os.path.exists(path):
        raise BadInput(f"no experiment {name!r} under {storage_path} (no {CONFIG_FILE} found)")
    try:
        return load_search_config(path)
    except SearchConfigError as exc:
        raise BadInput(f"saved config of {name!r} is unreadable: {exc}") from None


def drive(
    cfg: SearchConfig,
    address: str | None,
    restore: bool,
    retry_errored: bool = False,
    overwrite: bool = False,
) -> Summary:
    """Check, lock, track and run (or restore) a search; see `run_search`."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    check_storage_path(cfg)
    warn_if_job_paths_are_temporary(cfg)
    if address:
        probe_address(address)
    else:
        check_local_resources(cfg)
    check_batch_size(cfg, stage_data(cfg))
    probe_tracking_or_fail(cfg)
    # MLflow's client retries an unreachable server for minutes; the outbox retries instead.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    # MLflow prints run URLs, password included when the URI has one; we print our own.
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"

    folder = state_dir(cfg)
    try:
        with experiment_lock(folder, cfg.name):
            if overwrite:
                remove_experiment(cfg)
            saved = os.path.join(folder, CONFIG_FILE)
            if not restore or not os.path.exists(saved):
                dump_search_config(cfg, saved)
                # It holds the tracking URI, which may carry a password: owner-only, like .netrc.
                os.chmod(saved, 0o600)
            return drive_locked(cfg, address, restore, retry_errored)
    except ExperimentLocked as exc:
        raise Locked(str(exc)) from None


def warn_if_job_paths_are_temporary(cfg: SearchConfig) -> None:
    """Under `ray job submit` the command runs in a temporary copy of the working directory:
    results and a SQLite store kept there are lost with it, and a rerun could not resume."""
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ:  # set by Ray for job entrypoints
        return
    here = os.getcwd()
    uri = cfg.mlflow.tracking_uri
    paths = {
        "storage_path": cfg.storage_path,
        "mlflow.tracking_uri": uri.removeprefix("sqlite:///"),
    }
    for key, path in paths.items():
        if os.path.isabs(path) and os.path.commonpath([here, path]) == here:
            print(
                f"cnn-tune: warning: {key} {path} is inside this job's temporary working "
                "directory; pass an absolute shared location (--set "
                f"{key}=/shared/...) so results survive the job and a rerun can resume",
                file=sys.stderr,
            )


def remove_experiment(cfg: SearchConfig) -> None:
    """--overwrite: forget the old experiment's Ray state and run map (MLflow runs stay)."""
    import shutil

    from tune.lock import LOCK_FILE, OWNER_FILE

    folder = state_dir(cfg)
    for entry in os.listdir(folder):
        if entry not in (LOCK_FILE, OWNER_FILE):
            path = os.path.join(folder, entry)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    if is_remote(cfg.storage_path):
        print(
            f"cnn-tune: warning: --overwrite does not delete {experiment_path(cfg)}; Ray "
            "starts a new experiment there",
            file=sys.stderr,
        )


def drive_locked(
    cfg: SearchConfig, address: str | None, restore: bool, retry_errored: bool
) -> Summary:
    tracker = start_tracking(cfg)
    start = time.monotonic()
    # Forced experiment snapshots after each checkpoint are what makes a resume exact; short
    # epochs trigger Ray's warning about their frequency, which says nothing useful here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    try:
        # Ray Tune prints its own boxes and tables on stdout: stdout is the JSON summary's.
        with contextlib.redirect_stdout(sys.stderr):
            start_ray(address)
            # After ray.init: Ray's core worker installs its own SIGTERM handler, which exits.
            with sigterm_as_sigint():
                outcome = fit(cfg, address, tracker, restore, retry_errored)
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
    summary.interrupted = bool(outcome.unfinished()) or len(outcome.records) < cfg.trial_count()
    reconcile_runs(tracker, outcome, cfg)
    for trial_id in outcome.unfinished():
        tracker.trial_ended(trial_id, "interrupted")
    with contextlib.redirect_stdout(sys.stderr):  # MLflow prints model-logging notes
        if summary.interrupted:
            tracker.close_open_trials("interrupted")
            tracker.finish_search({}, "KILLED")
            print(
                f"search {cfg.name!r} interrupted; its state is saved: "
                f"cnn-tune resume {cfg.name} --storage-path {cfg.storage_path}",
                file=sys.stderr,
            )
        elif tracker.runs is not None and tracker.runs.finished and not outcome.ran_anything:
            # A finished search resumed: its artifacts are logged; only close the parent run,
            # which reattaching reopened.
            tracker.finish_search({}, "FINISHED" if summary.exit_code == 0 else "FAILED")
        else:
            finish_tracking(tracker, cfg, summary, outcome)
    summary.mlflow = tracker.info()
    report_tracking(tracker, summary, outcome, cfg)
    return summary


def reconcile_runs(tracker: Tracker, outcome: FitOutcome, cfg: SearchConfig) -> None:
    """Bring MLflow in line with Ray's final word on each trial.

    A driver killed between a trial's end and the run map's save leaves that run open, and a
    restored experiment does not replay the end; error messages are complete only here.
    """
    from tune.tracking import stop_reason

    open_runs = set(tracker.open_trials())
    for record in outcome.records:
        status = outcome.statuses.get(record.trial_id)
        if record.error:
            tracker.record_error(record.trial_id, record.error)
        if record.trial_id not in open_runs:
            continue
        if status == "ERROR":
            tracker.trial_ended(record.trial_id, "error", record.error)
        elif status == "TERMINATED":
            tracker.trial_ended(record.trial_id, stop_reason(record.metrics, cfg.epochs, False))


def report_tracking(
    tracker: Tracker, summary: Summary, outcome: FitOutcome, cfg: SearchConfig
) -> None:
    trial_seconds = sum(h.get("epoch_seconds", 0) for hs in outcome.histories.values() for h in hs)
    share = tracker.seconds / trial_seconds if trial_seconds else None
    summary.mlflow["logging_share"] = round(share, 4) if share is not None else None
    print(
        f"mlflow: parent run {summary.mlflow['parent_run_id']} "
        f"in {summary.mlflow['tracking_uri']}; "
        f"logging while trials ran took {tracker.seconds:.2f}s on the driver "
        f"({100 * (share or 0):.2f}% of {trial_seconds:.0f}s of trial time), "
        f"end-of-search artifacts {tracker.artifact_seconds:.1f}s",
        file=sys.stderr,
    )
    unsent = tracker.unsent()
    if unsent:
        print(
            f"mlflow: {unsent} records could not be sent yet (store unreachable); they wait in "
            f"{state_dir(cfg)} and are sent by `cnn-tune resume {cfg.name}`",
            file=sys.stderr,
        )


@contextlib.contextmanager
def sigterm_as_sigint() -> Any:
    """SIGTERM (a scheduler, `kill`) stops a search like Ctrl-C: Ray Tune's graceful path
    stops the trials and saves the experiment state, so the search can be resumed."""
    import signal

    def forward(signum: int, frame: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def probe_tracking_or_fail(cfg: SearchConfig) -> None:
    try:
        probe_tracking(cfg.mlflow.tracking_uri)
    except TrackingUnreachable as exc:
        raise Unreachable(str(exc)) from None


def fit(
    cfg: SearchConfig, address: str | None, tracker: Tracker, restore: bool, retry_errored: bool
) -> FitOutcome:
    """On a started Ray: run (or restore) the Tuner with progress and MLflow callbacks."""
    import ray
    from ray import tune

    from tune.progress import ProgressCallback

    try:
        if address:
            check_cluster_resources(cfg)
        progress = ProgressCallback(sorted(cfg.space), cfg.epochs, cfg.trial_count())
        mlflow_cb = make_callback(tracker, cfg.epochs, cfg.search.time_budget_s)
        callbacks = [progress, mlflow_cb]
        if restore and tune.Tuner.can_restore(experiment_path(cfg)):
            print(f"search {cfg.name!r}: resuming from {experiment_path(cfg)}", file=sys.stderr)
            tuner = restore_tuner(cfg, callbacks, retry_errored)
        else:
            print(
                f"search {cfg.name!r}: {cfg.trial_count()} trials of {cfg.dataset}, "
                f"{cfg.search.algorithm} search, {cfg.search.scheduler} scheduler, "
                f"up to {cfg.epochs} epochs",
                file=sys.stderr,
            )
            tuner = make_tuner(cfg, callbacks)
        outcome = outcome_from(tuner.fit())
        outcome.ran_anything = bool(progress.latest)
        outcome.statuses = saved_statuses(experiment_path(cfg))
        return outcome
    finally:
        ray.shutdown()


__all__ = [
    "run_search",
    "resume_search",
    "experiment_path",
    "DriverError",
    "BadInput",
    "Unreachable",
    "Locked",
]
