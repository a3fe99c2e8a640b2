"""A search's MLflow runs around Ray's fit: open them, settle them with Ray's word, close them.

One verb per step of their life, in the order a search takes them:
- `open_runs`: create (or reattach to) the parent run, before any trial;
- `settle_runs`: decide how the search ended (`tune.outcomes.decide_end`) and end every child
  run as Ray saw its trial end;
- `close_runs`: log the end-of-search artifacts (`log_search_end`, the best model once) and
  end the parent;
- `abandon_runs`: instead of the two above, when the fit raised: leave nothing RUNNING.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any

import yaml

from tune.config.schema import SearchConfig
from tune.crash_points import crash_point
from tune.logs import get_logger
from tune.outcomes import ERROR, INTERRUPTED, FitOutcome, SearchEnd, decide_end, stop_reason
from tune.paths import redact_credentials, state_dir
from tune.summary import Summary
from tune.tracking.tracker import Tracker

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
    tracker: Tracker, cfg: SearchConfig, outcome: FitOutcome, disk_full: bool = False
) -> SearchEnd:
    """After a fit: decide how the search ended (`tune.outcomes.decide_end`) and end every child
    run to match. The trials a search-level stop cut end FINISHED with its name as their
    reason (Ray's budget stop never reports them complete); those a signal stopped end
    `interrupted`. Each record of `outcome` gets its recorded stop reason, and records of
    trials that never started are dropped.
    """
    assert tracker.runs is not None
    tracker.send_inline()  # the end of the search writes in order, on this thread
    tracker.runs.fit_seconds += outcome.fit_seconds
    tracker.save_runs()
    budget = cfg.search.time_budget_s
    end = decide_end(
        outcome,
        epochs=cfg.epochs,
        planned=outcome.planned or cfg.trial_count(),
        open_trials=set(tracker.open_trials()),
        tracked=set(tracker.runs.trials),
        budget_spent=budget is not None and tracker.runs.fit_seconds >= budget,
        disk_full=disk_full,
    )
    _open_missing_runs(tracker, outcome, end)
    _end_children_as_ray_saw(tracker, outcome, cfg, cut_by=end.stopped_by)
    for trial_id in outcome.unfinished():
        if trial_id in end.started:
            tracker.trial_ended(trial_id, INTERRUPTED)
    outcome.records = [r for r in outcome.records if r.trial_id in end.started]
    reasons = tracker.reasons()
    for record in outcome.records:
        record.reason = reasons.get(record.trial_id)
    return end


def close_runs(
    tracker: Tracker, cfg: SearchConfig, summary: Summary, outcome: FitOutcome
) -> dict[str, Any]:
    """Close the search's runs: as interrupted, as a finished search resumed (nothing new to
    log), or with its end-of-search artifacts.

    Returns:
        The summary's `mlflow` part: where the runs are, and logging's share of trial time.
    """
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
    return {**tracker.info(), "logging_share": log_tracking_cost(tracker, outcome, cfg)}


def note_interrupted(tracker: Tracker, cfg: SearchConfig, summary: Summary) -> None:
    """The parent's description says the search was interrupted and what it had so far."""
    from tune.tracking._conventions import NOTE
    from tune.tracking._notes import search_note

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


def _open_missing_runs(tracker: Tracker, outcome: FitOutcome, end: SearchEnd) -> None:
    """Every trial the summary counts has its run: one that reported (or failed) while this
    driver never saw it start gets its run now, with the epochs Ray kept, and a warning. The
    summary and MLflow must agree on the trials of a search."""
    assert tracker.runs is not None
    for record in outcome.records:
        if record.trial_id not in end.started or record.trial_id in tracker.runs.trials:
            continue
        log.warning(
            f"trial {record.trial_id} ran without a run of its own in MLflow; "
            "creating it from Ray's results"
        )
        tracker.trial_started(record.trial_id, record.config)
        for row in outcome.histories.get(record.trial_id, []):
            tracker.trial_result(record.trial_id, row)


def _end_children_as_ray_saw(
    tracker: Tracker, outcome: FitOutcome, cfg: SearchConfig, cut_by: str | None = None
) -> None:
    """Bring MLflow in line with Ray's final word on each trial.

    A driver killed between a trial's end and the run map's save leaves that run open, and a
    restored experiment does not replay the end; error messages are complete only here.
    `interrupted` is never the last word on a run whose trial Ray then reports ended: a stop
    that came as it finished (a signal, a full disk) left Ray's state saying TERMINATED, so
    the resume does not run it again and its run is ended here as Ray saw it.
    """
    interrupted = {t for t, reason in tracker.reasons().items() if reason == INTERRUPTED}
    still_open = set(tracker.open_trials()) | interrupted
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
    from tune.tracking._explain import explain_search
    from tune.tracking.artifacts import log_search_plots, log_trial_curves

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
    from tune.tracking.artifacts import log_best_model

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
