"""The walk of one search: preflight, lock, open the runs, fit, end.

`run_search` and `resume_search` decide what to drive (a new search, a resume, an overwrite);
`drive` checks it all first (`tune.preflight`: nothing is created before every check passed),
takes the experiment's lock and stages the attempt (`tune.attempt` undoes a failed start);
`drive_locked` opens the MLflow runs while Ray starts, fits (`tune.fit.tuner`), and
`end_search` decides the end once (`tune.outcomes.decide_end`), builds the summary whole and
closes the runs (`tune.tracking.runs`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

from tune.attempt import StartAttempt
from tune.config.schema import SearchConfig, dump_search_config
from tune.disk_full import describe_full, is_disk_full, watch_for_full_disk
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
from tune.preflight import StartPlan, preflight
from tune.summary import Summary, summarize

if TYPE_CHECKING:  # the driver imports Ray's and MLflow's sides only when a search runs
    from tune.outcomes import FitOutcome
    from tune.tracking import Tracker

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
    from tune.config.parse import load_search_config

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
    plan = preflight(cfg, address, restore)  # exit 2 or 3 here: nothing was made
    quiet_the_mlflow_client()
    attempt = StartAttempt(plan.folder)  # what is there before the lock makes anything
    try:
        with a_full_disk_fails_the_start(cfg.name, plan.folder, attempt):  # the lock's own files
            with experiment_lock(plan.folder, cfg.name):
                try:
                    with a_full_disk_fails_the_start(cfg.name, plan.folder, attempt):
                        if overwrite:
                            set_aside_the_old_search(cfg, attempt)
                        saved = os.path.join(plan.folder, CONFIG_FILE)
                        if not restore or not os.path.exists(saved):
                            dump_search_config(cfg, saved)  # owner-only: it has the URI
                        return drive_locked(plan, retry_errored, attempt)
                except DriverError as exc:
                    if exc.exit_code in FAILED_START and not attempt.committed:
                        attempt.undo()
                    raise
    finally:
        attempt.remove_lock_files()  # only after an undo, once the lock is released


@contextlib.contextmanager
def a_full_disk_fails_the_start(name: str, folder: str, attempt: StartAttempt) -> Iterator[None]:
    """A disk that is full before the first trial starts is a failed start: exit 2, one line,
    and what the start made is undone. A full disk after the start is `tune.disk_full`'s."""
    try:
        yield
    except OSError as exc:
        if attempt.committed or not is_disk_full(exc):
            raise
        if not attempt.undone:
            attempt.undo()
        raise BadInput(f"cannot start search {name!r}: {describe_full(folder)}") from None


def quiet_the_mlflow_client() -> None:
    """MLflow's client retries an unreachable server for minutes; the outbox retries instead.
    And it prints run URLs, password included when the URI has one; we print our own."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"


def set_aside_the_old_search(cfg: SearchConfig, attempt: StartAttempt) -> None:
    """--overwrite: the old experiment moves aside until the new start has passed its checks."""
    attempt.set_aside()
    if is_remote(cfg.storage_path):
        log.warning(
            f"--overwrite does not delete {experiment_path(cfg.storage_path, cfg.name)}; Ray "
            "starts a new experiment there"
        )


def drive_locked(
    plan: StartPlan, retry_errored: bool = False, attempt: StartAttempt | None = None
) -> Summary:
    """Open the runs, fit, and end the search; the experiment lock is held.

    `attempt` is committed once the store has answered and Ray is up: the last check before
    the Tuner writes anything.
    """
    from tune.fit.tuner import fit
    from tune.tracking import MlflowTrialCallback, abandon_runs, open_runs

    cfg = plan.cfg
    start = time.monotonic()
    # Forced experiment snapshots after each checkpoint are what makes a resume exact; short
    # epochs trigger Ray's warning about their frequency, which says nothing useful here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # The MLflow store (a new SQLite store builds its tables: seconds) and the parent run are
    # made on a thread while Ray starts on this one; `fit` waits for them before any trial.
    with watch_for_full_disk(cfg.name, experiment_path(cfg.storage_path, cfg.name)) as watch:
        db = sqlite_file(cfg.mlflow.tracking_uri)
        watch.store_path = os.path.dirname(os.path.abspath(db)) if db else None
        with ThreadPoolExecutor(2, thread_name_prefix="open-runs") as pool:
            opening = pool.submit(open_runs, cfg, plan.inputs)
            pool.submit(warm_up_search_end)  # the end's one-off imports and export, meanwhile

            def trial_callback() -> MlflowTrialCallback:
                tracker = opening.result()  # exit 2 or 3 here when the store failed
                if attempt is not None:
                    attempt.commit()  # the start has passed its checks
                return MlflowTrialCallback(tracker, cfg.epochs, cfg.search.time_budget_s)

            try:
                outcome = fit(
                    cfg, plan.address, trial_callback, plan.restore, retry_errored, plan.warm
                )
            except BaseException as exc:
                if opening.exception() is None:  # waits; a store that failed has nothing open
                    discard = attempt is not None and not attempt.committed
                    try:
                        abandon_runs(opening.result(), discard)
                    except OSError as err:  # the disk filled under Ray: closing hit it too
                        if not watch.notice(err, "closing the runs"):
                            raise
                # Ray's end on a full disk (its state or a trial's error unsaved) is the stop.
                if watch.found is not None or watch.notice(exc):
                    watch.keep_state()
                    raise watch.error() from None
                raise
        # A full disk that Ray survived: its state on disk may lag, so resume, never call it done.
        with sigterm_waits_for_the_end() as stop_asked:
            summary = end_search(opening.result(), cfg, outcome, start, watch.found is not None)
        if stop_asked:
            log.warning(
                "a stop (SIGTERM) came while the end of the search was logged: it ended first"
            )
        if watch.found is not None:
            if not summary.interrupted:  # the disk filled while the end was being saved
                summary = replace(summary, interrupted=True)
            watch.keep_state()
            log.error(str(watch.error()))
        return summary


def warm_up_search_end() -> None:
    # Imported here, on the pool's thread: `tune.tracking.artifacts` brings matplotlib.
    from tune.tracking import warm_up_search_end

    warm_up_search_end()


@contextlib.contextmanager
def sigterm_waits_for_the_end() -> Iterator[list[int]]:
    """A SIGTERM (`cnn-tune stop`, a scheduler) that comes while the end of a search is logged
    waits for it: the trials have ended, and the seconds left close the runs and write the
    summary, where SIGTERM's default (or Ray's leftover handler) would end the driver mid-write,
    its parent run RUNNING until a resume. Yields the signals that came, for the caller to say
    so. Off the main thread (no signal handlers there) it changes nothing."""
    came: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield came
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: came.append(signum))
    try:
        yield came
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def end_search(
    tracker: Tracker, cfg: SearchConfig, outcome: FitOutcome, start: float, disk_full: bool
) -> Summary:
    """Decide how the search ended (`tune.outcomes.decide_end`, through `settle_runs`), build
    its summary, and close its runs to match: the one end of every search."""
    from tune.tracking import close_runs, settle_runs

    end = settle_runs(tracker, cfg, outcome, disk_full)
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
        interrupted=end.interrupted,
        stopped_by=end.stopped_by,
    )
    summary = replace(summary, mlflow=close_runs(tracker, cfg, summary, outcome))
    if summary.interrupted:
        log.info(
            f"search {cfg.name!r} interrupted; its state is saved: "
            f"cnn-tune resume {cfg.name} --storage-path {cfg.storage_path}"
        )
    return summary


__all__ = ["run_search", "resume_search", "IF_EXISTS"]
