"""The run and resume rules of a search, walked in order: check, lock, track, fit, summarize.

Checks run cheapest first and all before anything is created, so bad input never leaves a
half-made experiment behind. The Ray side is `tune.tuner`, the MLflow side `tune.runs`.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from tune.attempt import StartAttempt
from tune.checks import (
    check_batch_size,
    check_local_resources,
    check_paths,
    probe_address,
    probe_tracking_store,
)
from tune.config import SearchConfig, dump_search_config
from tune.disk_full import watch_for_full_disk
from tune.errors import BadInput, DriverError, ExitCode, Locked, SearchConfigError
from tune.lock import experiment_lock, is_locked
from tune.logs import get_logger
from tune.paths import (
    CONFIG_FILE,
    experiment_path,
    is_remote,
    locate_experiment,
    saved_config_path,
    sqlite_file,
)
from tune.staging import stage_data
from tune.summary import Summary, summarize

if TYPE_CHECKING:  # the driver imports Ray's and MLflow's sides only when a search runs
    from tune.tracking import Tracker
    from tune.tuner import FitOutcome

# What `run` does when the experiment folder already exists.
IF_EXISTS = ("refuse", "resume", "overwrite")
# Exit codes of a start that failed its checks: it removes what it created (`tune.attempt`).
# Exit 4 (another driver holds the lock) removes nothing.
FAILED_START = (ExitCode.BAD_INPUT, ExitCode.UNREACHABLE)

log = get_logger("driver")


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
    folder = locate_experiment(cfg.storage_path, cfg.name, "name")
    if not experiment_exists(cfg):
        return drive(cfg, address, restore=False)
    if is_locked(folder):
        raise Locked(f"experiment {cfg.name!r} is already being driven by another live process")
    if if_exists == "refuse":
        raise BadInput(
            f"experiment {cfg.name!r} already exists at "
            f"{experiment_path(cfg.storage_path, cfg.name)}; resume it (cnn-tune resume, or "
            "run --resume-if-exists), start afresh (--overwrite), or pick another name (--name)"
        )
    if if_exists == "resume":
        saved = load_saved_config(cfg.storage_path, cfg.name)
        if saved.to_dict() != cfg.to_dict():
            log.warning(
                f"resuming {cfg.name!r} with the config saved in its experiment folder, "
                "not the one given"
            )
        return drive(saved, address, restore=True)
    return drive(cfg, address, restore=False, overwrite=True)


def resume_search(
    name: str, storage_path: str, address: str | None = None, retry_errored: bool = False
) -> Summary:
    """Continue an interrupted search from its experiment folder (config read from there)."""
    cfg = load_saved_config(storage_path, name)
    return drive(cfg, address, restore=True, retry_errored=retry_errored)


def experiment_exists(cfg: SearchConfig) -> bool:
    """Whether this experiment was started before (its config copy is in the state folder)."""
    return os.path.exists(saved_config_path(cfg.storage_path, cfg.name)) or (
        not is_remote(cfg.storage_path)
        and os.path.exists(experiment_path(cfg.storage_path, cfg.name))
    )


def load_saved_config(storage_path: str, name: str) -> SearchConfig:
    """The resolved config a search saved when it started."""
    from tune.parse import load_search_config

    path = os.path.join(locate_experiment(storage_path, name), CONFIG_FILE)
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
    """Check, lock, track and run (or restore) a search; see `run_search`.

    A start that fails its checks (exit 2 or 3) before the first trial leaves the experiment
    as it found it (`tune.attempt.StartAttempt`); with `overwrite`, the old experiment is
    replaced only once the new start has passed them.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    folder = locate_experiment(cfg.storage_path, cfg.name, "name")
    check_paths(cfg)
    warn_if_job_paths_are_temporary(cfg)
    if address:
        probe_address(address)
    else:
        check_local_resources(cfg)
    staged = stage_data(cfg)
    check_batch_size(cfg, staged.train_images)
    try:
        warm = prepare_warm_start(cfg)  # an unknown earlier search: exit 2, before anything
    except BadInput as exc:
        if not restore:
            raise
        # A restore keeps its searcher's own state; the earlier searches only size the plan.
        log.warning(f"{exc}; resuming without it")
        warm = None
    probe_tracking_store(cfg.mlflow.tracking_uri)
    # MLflow's client retries an unreachable server for minutes; the outbox retries instead.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    # MLflow prints run URLs, password included when the URI has one; we print our own.
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"

    attempt = StartAttempt(folder)  # what is there before the lock makes anything
    try:
        with experiment_lock(folder, cfg.name):
            try:
                if overwrite:
                    attempt.set_aside()
                    if is_remote(cfg.storage_path):
                        log.warning(
                            f"--overwrite does not delete "
                            f"{experiment_path(cfg.storage_path, cfg.name)}; Ray starts a new "
                            "experiment there"
                        )
                saved = os.path.join(folder, CONFIG_FILE)
                if not restore or not os.path.exists(saved):
                    dump_search_config(cfg, saved)  # owner-only from its creation: it has the URI
                return drive_locked(
                    cfg, address, restore, retry_errored, staged.inputs, warm, attempt
                )
            except DriverError as exc:
                if exc.exit_code in FAILED_START and not attempt.committed:
                    attempt.undo()
                raise
    finally:
        attempt.remove_lock_files()  # only after an undo, once the lock is released


def drive_locked(
    cfg: SearchConfig,
    address: str | None,
    restore: bool,
    retry_errored: bool,
    inputs: list[dict] | None = None,
    warm: Any = None,
    attempt: StartAttempt | None = None,
) -> Summary:
    """Open the runs, fit, summarize and close the runs; the experiment lock is held.

    `inputs`: the staged dataset's splits, logged as MLflow dataset inputs (`tune.staging`).
    `attempt` is committed once the store has answered and Ray is up: the last check before
    the Tuner writes anything.
    """
    from tune.runs import abandon_runs, open_runs
    from tune.tuner import fit

    start = time.monotonic()
    # Forced experiment snapshots after each checkpoint are what makes a resume exact; short
    # epochs trigger Ray's warning about their frequency, which says nothing useful here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # The MLflow store (a new SQLite store builds its tables: seconds) and the parent run are
    # made on a thread while Ray starts on this one; `fit` waits for them before any trial.
    with watch_for_full_disk(cfg.name, experiment_path(cfg.storage_path, cfg.name)) as watch:
        with ThreadPoolExecutor(2, thread_name_prefix="open-runs") as pool:
            opening = pool.submit(open_runs, cfg, inputs)
            pool.submit(warm_up_search_end)  # the end's one-off imports and export, meanwhile

            def tracker_ready() -> Tracker:
                tracker = opening.result()  # exit 2 or 3 here when the store failed
                if attempt is not None:
                    attempt.commit()  # the start has passed its checks
                return tracker

            try:
                outcome = fit(cfg, address, tracker_ready, restore, retry_errored, warm)
            except BaseException as exc:
                if opening.exception() is None:  # waits; a store that failed has nothing open
                    discard = attempt is not None and not attempt.committed
                    abandon_runs(opening.result(), discard)
                # Ray's end on a full disk (its state or a trial's error unsaved) is the stop.
                if watch.found is not None or watch.notice(exc):
                    watch.keep_state()
                    raise watch.error() from None
                raise
        tracker = opening.result()
        try:
            summary = finish(tracker, cfg, outcome, start)
        finally:
            outcome.wait_for_ray()
        if watch.found is not None:  # its state on disk may lag: resume, never call it done
            watch.keep_state()
            summary.interrupted = True
            log.error(str(watch.error()))
        return summary


def prepare_warm_start(cfg: SearchConfig) -> Any:
    """The earlier trials of `search.warm_start` and, for random and grid, the new trials
    (none evaluated before); None without a warm start.

    Raises:
        BadInput (exit 2): an earlier search that does not exist, or a space left with no
            config that was not evaluated.
    """
    from tune.warm_start import load_warm_start, new_points

    warm = load_warm_start(cfg)
    if warm is not None and cfg.search.algorithm != "optuna":
        warm.new = new_points(cfg, warm)
        if not warm.new:
            raise BadInput(
                f"search.warm_start: every config of the space was evaluated by "
                f"{', '.join(warm.sources)}; nothing is left to search"
            )
    return warm


def warm_up_search_end() -> None:
    # Imported here, on the pool's thread: `tune.artifacts` brings matplotlib.
    from tune.artifacts import warm_up_search_end

    warm_up_search_end()


def finish(tracker: Tracker, cfg: SearchConfig, outcome: FitOutcome, start: float) -> Summary:
    """Settle the runs with Ray's outcome, summarize, and log the end of the search."""
    from tune.runs import close_runs, settle_runs

    interrupted, stopped_by = settle_runs(tracker, cfg, outcome)
    summary = summarize(
        outcome.records,
        name=cfg.name,
        epochs=cfg.epochs,
        metric=cfg.search.metric,
        mode=cfg.search.mode,
        searched_keys=cfg.searched_keys(),
        wall_seconds=time.monotonic() - start,
        storage_path=cfg.storage_path,
        experiment_path=experiment_path(cfg.storage_path, cfg.name),
    )
    summary.interrupted, summary.stopped_by = interrupted, stopped_by
    close_runs(tracker, cfg, summary, outcome)
    if summary.interrupted:
        log.info(
            f"search {cfg.name!r} interrupted; its state is saved: "
            f"cnn-tune resume {cfg.name} --storage-path {cfg.storage_path}"
        )
    return summary


def warn_if_job_paths_are_temporary(cfg: SearchConfig) -> None:
    """Under `ray job submit` the command runs in a temporary copy of the working directory:
    results and a SQLite store kept there are lost with it, and a rerun could not resume."""
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ:  # set by Ray for job entrypoints
        return
    here = os.getcwd()
    paths = {
        "storage_path": cfg.storage_path,
        "mlflow.tracking_uri": sqlite_file(cfg.mlflow.tracking_uri) or "",
    }
    for key, path in paths.items():
        if os.path.isabs(path) and os.path.commonpath([here, path]) == here:
            log.warning(
                f"{key} {path} is inside this job's temporary working directory; pass an "
                f"absolute shared location (--set {key}=/shared/...) so results survive the "
                "job and a rerun can resume"
            )


__all__ = ["run_search", "resume_search", "IF_EXISTS"]
