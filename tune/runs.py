"""A search's MLflow runs around Ray's fit: open them, settle them with Ray's word, close them.

Opening creates (or reattaches to) the parent run; settling ends every child run as Ray saw
its trial end; closing logs the end-of-search artifacts and ends the parent.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any

import yaml

from tune.config import SearchConfig
from tune.crash_points import crash_point
from tune.logs import get_logger
from tune.outcomes import BUDGET, ERROR, INTERRUPTED, SCHEDULER, stop_reason
from tune.paths import redact_credentials, state_dir
from tune.summary import Summary
from tune.tracking import Tracker
from tune.tuner import FitOutcome

log = get_logger("mlflow")


def open_runs(cfg: SearchConfig, inputs: list[dict[str, Any]] | None = None) -> Tracker:
    """Create (or reattach to) the search's parent run before any trial starts.

    `inputs`: the dataset's splits as MLflow dataset inputs (`tune.staging.dataset_inputs`),
    logged on the parent and on every child.

    Raises:
        TrackingUnreachable (exit 3) when the store does not answer.
    """
    tracker = Tracker(
        cfg.mlflow.tracking_uri,
        cfg.mlflow.experiment,
        state_dir(cfg.storage_path, cfg.name),
        final_flush_s=cfg.mlflow.final_flush_s,
    )
    shown = redact_credentials(cfg.to_dict())  # no password, no webhook secret in MLflow
    tracker.start_search(cfg, yaml.safe_dump(shown, sort_keys=False), inputs)
    tracker.send_in_background()  # trials never wait on the store
    return tracker


def settle_runs(
    tracker: Tracker, cfg: SearchConfig, outcome: FitOutcome
) -> tuple[bool, str | None]:
    """After a fit: decide how the search ended, and end every child run to match.

    A search ended by its time budget is a normal end (`stopped_by` budget): the searcher may
    not have proposed every trial, and the trials it cut end FINISHED with reason `budget`
    (Ray's budget stop never reports them complete). Only a signal or a crash interrupts.

    Returns:
        (interrupted, stopped_by); each record of `outcome` gets its recorded stop reason.
    """
    assert tracker.runs is not None
    tracker.send_inline()  # the end of the search writes in order, on this thread
    tracker.runs.fit_seconds += outcome.fit_seconds
    tracker.save_runs()
    budget = cfg.search.time_budget_s
    spent = budget is not None and tracker.runs.fit_seconds >= budget
    still_open = set(tracker.open_trials())
    cut = [
        r.trial_id
        for r in outcome.records
        if r.trial_id in still_open
        and outcome.statuses.get(r.trial_id) == "TERMINATED"
        and stop_reason(r.metrics, cfg.epochs) == SCHEDULER
    ]
    # Trials Ray created but never started (a searcher's pending proposal when the budget ran
    # out) are not trials of this search: `trials.total` counts those that started.
    started = {
        r.trial_id
        for r in outcome.records
        if r.trial_id in tracker.runs.trials or "epoch" in r.metrics or r.error
    }
    missing = len(outcome.records) < (outcome.planned or cfg.trial_count())
    unfinished = outcome.unfinished()
    # A signal stops running trials (Ray saves them to continue); a spent budget explains only
    # trials that never ran or were never proposed.
    # A `search.stop` rule that fired ends the search like a spent budget: normally.
    ended_early = spent or outcome.search_stop is not None
    interrupted = any(t in started for t in unfinished) or (
        (missing or bool(unfinished)) and not ended_early
    )
    stopped_by = None
    if not interrupted and outcome.search_stop is not None:
        stopped_by = outcome.search_stop
    elif spent and not interrupted and (missing or cut or unfinished):
        stopped_by = BUDGET
    reconcile_runs(tracker, outcome, cfg, cut_by=stopped_by)
    for trial_id in unfinished:
        if trial_id in started:
            tracker.trial_ended(trial_id, INTERRUPTED)
    outcome.records = [r for r in outcome.records if r.trial_id in started]
    reasons = tracker.reasons()
    for record in outcome.records:
        record.reason = reasons.get(record.trial_id)
    return interrupted, stopped_by


def close_runs(tracker: Tracker, cfg: SearchConfig, summary: Summary, outcome: FitOutcome) -> None:
    """Close the search's runs: as interrupted, as a finished search resumed (nothing new to
    log), or with its end-of-search artifacts."""
    with contextlib.redirect_stdout(sys.stderr):  # MLflow prints model-logging notes
        if summary.interrupted:
            tracker.close_open_trials(INTERRUPTED)
            note_interrupted(tracker, cfg, summary)
            tracker.finish_search({}, "KILLED")
        elif tracker.runs is not None and tracker.runs.finished and not outcome.ran_anything:
            # A finished search resumed: its artifacts are logged; only close the parent run,
            # which reattaching reopened (and log the best model if that failed last time).
            log_best_model_once(tracker, cfg, summary, outcome)
            status = "FINISHED" if summary.exit_code == 0 else "FAILED"
            tracker.finish_search({}, status, summary.stopped_by)
        else:
            log_search_end(tracker, cfg, summary, outcome)
    summary.mlflow = tracker.info()
    summary.mlflow["logging_share"] = log_tracking_cost(tracker, outcome, cfg)


def note_interrupted(tracker: Tracker, cfg: SearchConfig, summary: Summary) -> None:
    """The parent's description says the search was interrupted and what it had so far."""
    from tune.conventions import NOTE
    from tune.notes import search_note

    assert tracker.runs is not None
    note = _warn_on_failure("writing the search's note", search_note, cfg, summary, None, [])
    if note:
        tracker.set_tags(tracker.runs.parent_run_id, {NOTE: note})


def abandon_runs(tracker: Tracker, discard: bool = False) -> None:
    """The fit raised (Ctrl-C before Ray saved anything, a crash): leave nothing RUNNING.

    `discard`: the start failed its checks before any trial (`tune.attempt`), so a parent run
    it created is deleted (soft) rather than left KILLED: that search never began.
    """
    tracker.send_inline()
    tracker.close_open_trials(INTERRUPTED)
    tracker.finish_search({}, "KILLED")
    if discard:
        tracker.discard_new_search()


def reconcile_runs(
    tracker: Tracker, outcome: FitOutcome, cfg: SearchConfig, cut_by: str | None = None
) -> None:
    """Bring MLflow in line with Ray's final word on each trial.

    A driver killed between a trial's end and the run map's save leaves that run open, and a
    restored experiment does not replay the end; error messages are complete only here.
    """
    still_open = set(tracker.open_trials())
    for record in outcome.records:
        status = outcome.statuses.get(record.trial_id)
        if record.error:
            tracker.record_error(record.trial_id, record.error)
        if record.trial_id not in still_open:
            continue
        if status == "ERROR":
            tracker.trial_ended(record.trial_id, ERROR, record.error)
        elif status == "TERMINATED":
            reason = stop_reason(record.metrics, cfg.epochs, cut_by=cut_by)
            tracker.trial_ended(record.trial_id, reason)


def _warn_on_failure(what: str, fn: Any, *args: Any) -> Any:
    # Artifacts are a view of the results; failing to make one must not fail the search.
    try:
        return fn(*args)
    except Exception as exc:
        log.warning(f"{what} failed: {type(exc).__name__}: {exc}")
        return None


def log_search_end(
    tracker: Tracker, cfg: SearchConfig, summary: Summary, outcome: FitOutcome
) -> None:
    """Close every run and log the end-of-search artifacts (curves, best model, plots)."""
    from tune.artifacts import log_search_plots, log_trial_curves
    from tune.explain import explain_search

    tracker.close_open_trials(INTERRUPTED)
    _warn_on_failure("logging learning curves", log_trial_curves, tracker, outcome.histories)
    crash_point("search_end")

    def plots_and_explanation() -> None:
        t0 = time.perf_counter()
        _warn_on_failure("logging search plots", log_search_plots, tracker, summary, cfg)
        t1 = time.perf_counter()
        _warn_on_failure(
            "explaining the search", explain_search, tracker, cfg, summary, outcome.histories
        )
        log.info(
            f"mlflow: search plots {t1 - t0:.1f}s, its explanation (notes, importance, cost, "
            f"table) {time.perf_counter() - t1:.1f}s"
        )

    # The plots are drawn while the best model is exported and uploaded on another thread.
    log_best_model_once(tracker, cfg, summary, outcome, alongside=plots_and_explanation)
    best = summary.best
    headline = {"best_val_acc": best["val_acc"], "test_acc": best.get("test_acc")} if best else {}
    status = "FINISHED" if summary.exit_code == 0 else "FAILED"
    tracker.finish_search(headline, status, summary.stopped_by)


def log_best_model_once(
    tracker: Tracker,
    cfg: SearchConfig,
    summary: Summary,
    outcome: FitOutcome,
    alongside: Callable[[], None] | None = None,
) -> None:
    """The best trial's model and confusion matrices on its run, registered if asked: once per
    search (a resume or a cron rerun does not log or register it again), and tried again on the
    next resume when it failed. A missing or torn checkpoint leaves the model out, with a
    warning; it never fails the search.

    `alongside` runs once in any case: while the model uploads when there is one to log.
    """
    pending = [alongside] if alongside is not None else []

    def run_alongside() -> None:
        while pending:
            pending.pop()()

    try:
        _log_best_model(tracker, cfg, summary, outcome, run_alongside)
    finally:
        run_alongside()


def _log_best_model(
    tracker: Tracker,
    cfg: SearchConfig,
    summary: Summary,
    outcome: FitOutcome,
    alongside: Callable[[], None],
) -> None:
    from tune.artifacts import log_best_model

    assert tracker.runs is not None
    best = summary.best
    if best is None or tracker.runs.model_of == best["trial_id"]:
        return
    checkpoint = outcome.checkpoints.get(best["trial_id"])
    if checkpoint is None:
        log.warning(f"no checkpoint of the best trial {best['trial_id']}: its model is not logged")
        return
    state = _warn_on_failure("reading the best trial's checkpoint", _read_checkpoint, checkpoint)
    if state is None:
        return
    state["trial_id"] = best["trial_id"]
    timings = _warn_on_failure(
        "logging the best model",
        log_best_model, tracker, state, cfg.mlflow.registered_model, alongside,
    )  # fmt: skip
    if timings:
        tracker.runs.model_of = best["trial_id"]
        tracker.save_runs()
        log.info(
            f"mlflow: best model logged in {timings['log_model_s']:.1f}s "
            f"(confusion matrices {timings['confusion_s']:.1f}s)"
        )


def _read_checkpoint(checkpoint: Any) -> dict[str, Any]:
    from trainables.ray_trainable import load_checkpoint_state

    with checkpoint.as_directory() as directory:
        return load_checkpoint_state(directory)


def log_tracking_cost(tracker: Tracker, outcome: FitOutcome, cfg: SearchConfig) -> float | None:
    """Say what MLflow cost the search (and what is still unsent); return its share of the
    trials' time."""
    trial_seconds = sum(h.get("epoch_seconds", 0) for hs in outcome.histories.values() for h in hs)
    share = tracker.seconds / trial_seconds if trial_seconds else None
    info = tracker.info()
    log.info(
        f"mlflow: parent run {info['parent_run_id']} in {info['tracking_uri']}; "
        f"logging while trials ran took {tracker.seconds:.2f}s on the driver "
        f"({100 * (share or 0):.2f}% of {trial_seconds:.0f}s of trial time), "
        f"end-of-search artifacts {tracker.artifact_seconds:.1f}s"
    )
    unsent = tracker.unsent()
    if unsent:
        log.warning(
            f"mlflow: {unsent} records could not be sent yet (store unreachable); they wait in "
            f"{state_dir(cfg.storage_path, cfg.name)} and are sent by `cnn-tune resume {cfg.name}`"
        )
    return round(share, 4) if share is not None else None
