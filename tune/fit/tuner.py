"""Everything Ray: start or join it, build or restore the `Tuner`, fit, read the outcome.

SIGTERM stops a fit as Ctrl-C does.

All of it is Ray Tune's own machinery (Tuner, TuneConfig, RunConfig, FailureConfig,
CheckpointConfig, with_resources, Tuner.restore); this module only wires a validated
`SearchConfig` into it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from tune import disk_full
from tune.config.schema import SearchConfig
from tune.errors import StateUnreadable, Unreachable
from tune.logs import get_logger, third_party_level
from tune.outcomes import FitOutcome, TrialRecord
from tune.paths import experiment_path, is_remote
from tune.warm_start import WarmStart

CHECKPOINTS_TO_KEEP = 2  # per trial: the latest and the one before (a torn write leaves one)

log = get_logger("tuner")


def start_ray(address: str | None, local_cpus: int) -> None:
    """Join the Ray cluster at `address`, else start a private local Ray of `local_cpus`."""
    import ray

    # Trials print nothing we need on the driver's stdout (they report through Tune), and the
    # driver's stdout is reserved for the JSON summary.
    common: dict[str, Any] = {"log_to_driver": False, "logging_level": third_party_level()}
    if address:
        try:
            ray.init(address=address, runtime_env=forwarded_env(), **common)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise Unreachable(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local cluster needs no token
    ray.init(
        address="local",
        num_cpus=local_cpus,
        # No dashboard web server on a private local Ray. (Ray 2.60's own gRPC ports still
        # listen on all interfaces; it maps 127.0.0.1 to the node IP. README says so.)
        include_dashboard=False,
        **common,
    )


def forwarded_env() -> dict[str, Any] | None:
    """The job's runtime env when the driver joins a running cluster: the test-only fault hook
    (`trainables.faults`) reaches this driver's trials, as it does on a private local Ray whose
    workers inherit the driver's environment. Nothing else is forwarded: paths such as the
    cache folder belong to each node."""
    from trainables.faults import ENV_VAR

    value = os.environ.get(ENV_VAR)
    return {"env_vars": {ENV_VAR: value}} if value else None


def make_trainable(cfg: SearchConfig) -> Any:
    from ray import tune

    from trainables.ray_trainable import train_cnn

    return tune.with_resources(
        train_cnn, {"cpu": cfg.resources.cpus_per_trial, "gpu": cfg.resources.gpus_per_trial}
    )


def make_stopper(cfg: SearchConfig) -> Any:
    """The `search.stop` stopper of a new search; None without a rule."""
    if cfg.search.stop is None:
        return None
    from tune.fit.stopping import SearchStopper

    return SearchStopper(cfg.search.stop, cfg.search.metric, cfg.search.mode)


def make_tuner(
    cfg: SearchConfig, callbacks: list[Any], stopper: Any = None, warm: WarmStart | None = None
) -> Any:
    """Build Ray Tune's Tuner for a new search (`warm`: its `tune.warm_start.WarmStart`)."""
    from ray import tune

    from tune.fit.algorithms import (
        make_param_space,
        make_scheduler,
        make_searcher,
        tune_max_concurrent,
    )

    search_alg = make_searcher(cfg, warm)
    new = warm.new if warm is not None else None
    return tune.Tuner(
        make_trainable(cfg),
        param_space=make_param_space(cfg, new),
        tune_config=tune.TuneConfig(
            metric=cfg.search.metric,
            mode=cfg.search.mode,
            search_alg=search_alg,
            scheduler=make_scheduler(cfg),
            # A warm-started random or grid search runs exactly its new points.
            num_samples=len(new) if new is not None else cfg.search.num_samples,
            max_concurrent_trials=tune_max_concurrent(search_alg, cfg),
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
            stop=stopper,
            verbose=0,
        ),
    )


def restore_tuner(cfg: SearchConfig, callbacks: list[Any], retry_errored: bool) -> Any:
    """`Tuner.restore` with the searcher's and scheduler's saved state.

    Finished trials are kept, unfinished ones continue from their latest checkpoints, and
    errored ones (which used up max_failures) stay errored unless `retry_errored`.
    """
    from ray import tune

    path = experiment_path(cfg.storage_path, cfg.name)
    if not is_remote(cfg.storage_path):
        disk_full.restore_kept_state(path)
        saved = read_experiment_state(path)  # one line, not Ray's traceback, when unreadable
        if not retry_errored:
            retry_errored = retry_full_disk_trials(saved.trials)
    tuner = tune.Tuner.restore(
        path,
        trainable=make_trainable(cfg),
        resume_unfinished=True,
        resume_errored=retry_errored,
    )
    # The saved RunConfig carries the callbacks of the driver that died; ours write to this
    # driver's tracker and stderr. Ray offers no public setter for them on restore.
    tuner._local_tuner._run_config.callbacks = callbacks
    return tuner


def retry_full_disk_trials(trials: list[Any]) -> bool:
    """Whether a resume continues the errored trials (of Ray's saved `trials`): yes when each
    failed on a full disk (a search stopped by `tune.disk_full` with max_failures spent). Ray
    resumes errored trials all or none, so a genuine failure among them keeps them all
    errored, with a warning."""
    full, other = disk_full.errored_trials(trials)
    if not full:
        return False
    if other:
        log.warning(
            f"trials {', '.join(full)} failed on a full disk, beside trials that failed for "
            "other reasons; `cnn-tune resume NAME --retry-errored` continues all of them"
        )
        return False
    log.info(
        f"continuing trials {', '.join(full)} from their checkpoints: they failed on a full disk"
    )
    return True


def restore_stopper(cfg: SearchConfig, tuner: Any, saved: str | None) -> Any:
    """The `search.stop` stopper of a restored search, in the restored Tuner.

    A search a rule already ended (`saved`, from its run map) stops again at once: Ray pickles the
    stopper only when the Tuner is made, before it has seen anything. After an interruption
    the plateau counts again from the trials that end after the resume.
    """
    from tune.outcomes import PLATEAU, TARGET

    stopper = make_stopper(cfg)
    if stopper is not None:
        if saved in (TARGET, PLATEAU):
            stopper.fired = saved
    # As for the callbacks: no public setter on restore.
    tuner._local_tuner._run_config.stop = stopper
    return stopper


def outcome_from(results: Any) -> FitOutcome:
    """Ray's ResultGrid -> plain records, per-epoch histories and latest checkpoints: one
    record per trial (`one_result_per_trial`)."""
    outcome = FitOutcome(records=[])
    for trial_id, result in one_result_per_trial(results).items():
        metrics = dict(result.metrics or {})
        error = None
        if result.error is not None:
            lines = [line for line in str(result.error).strip().splitlines() if line.strip()]
            error = lines[-1] if lines else type(result.error).__name__
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


def one_result_per_trial(results: Any) -> dict[str, Any]:
    """Trial id -> its result, in Ray's order. Once in CI (a 30-trial search that its target
    stopped) Ray's ResultGrid held a trial twice: its finished result and a copy that had
    never reported; the summary then counted 7 trials for 6 runs. The result that got
    furthest stands for the trial."""
    kept: dict[str, Any] = {}
    for result in results:
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id") or os.path.basename(str(result.path))
        if trial_id in kept:
            log.debug(f"Ray returned trial {trial_id} twice; keeping its furthest result")
            if progress_of(result) <= progress_of(kept[trial_id]):
                continue
        kept[trial_id] = result
    return kept


def progress_of(result: Any) -> tuple[int, bool]:
    """How far a result got: its reported iterations, then whether it holds an error."""
    iterations = (result.metrics or {}).get("training_iteration") or 0
    return int(iterations), result.error is not None


def saved_statuses(path: str) -> dict[str, str]:
    """Each trial's status as saved in the experiment state: what a restore would see.

    After Ctrl-C/SIGTERM, Ray ends the running trials in memory (TERMINATED) but saves them
    as PENDING, to be continued; the saved view is the one that tells an interruption.
    """
    return {t.trial_id: t.status for t in read_experiment_state(path).trials}


def experiment_state_files(path: str) -> list[str]:
    """Ray's saved experiment state files in an experiment folder, oldest first (none: Ray
    has not saved one, and a resume starts afresh)."""
    return sorted(glob.glob(os.path.join(path, "experiment_state-*.json")))


def read_experiment_state(path: str) -> Any:
    """Ray's saved view of the experiment (its `ExperimentAnalysis`).

    Raises:
        StateUnreadable: the state file is cut short (a full disk while Ray saved it) or
            damaged; the line names the file. A full disk the driver saw takes precedence.
    """
    from ray.tune import ExperimentAnalysis

    try:
        return ExperimentAnalysis(path)
    except Exception as exc:
        files = experiment_state_files(path)
        where = files[-1] if files else path
        raise StateUnreadable(
            f"cannot read Ray's experiment state {where}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}; the trials' checkpoints and "
            "MLflow runs are kept: put back a good copy of the file, or start afresh "
            "(run --overwrite)"
        ) from None


@contextlib.contextmanager
def sigterm_as_sigint() -> Iterator[None]:
    """SIGTERM (a scheduler, `kill`) stops a search like Ctrl-C: Ray Tune's graceful path
    stops the trials and saves the experiment state, so the search can be resumed.

    On the way out every handler comes back as it was, SIGINT and SIGUSR1 included: Ray Tune
    installs its own for those during `fit` and leaves them behind, so a second search in the
    same process (the tests, a notebook) would have Ctrl-C set a dead search's flag."""

    def forward(signum: int, frame: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    kept = [signal.SIGINT, signal.SIGTERM] + (
        [signal.SIGUSR1] if hasattr(signal, "SIGUSR1") else []
    )
    previous = {signum: signal.getsignal(signum) for signum in kept}
    signal.signal(signal.SIGTERM, forward)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: installed outside Python, cannot be put back
                signal.signal(signum, handler)


def fit(
    cfg: SearchConfig,
    address: str | None,
    trial_callback: Callable[[], Any],
    restore: bool,
    retry_errored: bool,
    warm: WarmStart | None = None,
) -> FitOutcome:
    """Start or join Ray, run (or restore) the Tuner with the progress and MLflow callbacks,
    and shut Ray down before returning, however it ends.

    `trial_callback` is called once Ray is up and returns the driver's MLflow trial callback,
    built by the tracking wing (`tune.tracking.MlflowTrialCallback`): the driver opens the
    MLflow runs meanwhile, and their error (an unreachable store: exit 3) stops the search
    before any trial starts. `warm`:
    the search's `tune.warm_start.WarmStart`, if it has one.
    """
    planned = warm.trial_count(cfg.trial_count()) if warm is not None else cfg.trial_count()
    import ray
    from ray import tune

    from tune.checks import check_cluster_resources, local_ray_cpus
    from tune.fit.callbacks import KeepResultLogs, ProgressCallback

    path = experiment_path(cfg.storage_path, cfg.name)
    # Ray Tune prints its own boxes and tables on stdout: stdout is the JSON summary's.
    with contextlib.redirect_stdout(sys.stderr):
        start_ray(address, local_ray_cpus(cfg))
        try:
            # After ray.init: Ray's core worker installs its own SIGTERM handler, which exits.
            with sigterm_as_sigint():
                if address:
                    check_cluster_resources(cfg)
                progress = ProgressCallback(cfg.searched_keys(), cfg.epochs, planned)
                mlflow_cb = trial_callback()
                callbacks: list[Any] = [progress, mlflow_cb, KeepResultLogs()]
                if restore and tune.Tuner.can_restore(path):
                    log.info(f"search {cfg.name!r}: resuming from {path}")
                    tuner = restore_tuner(cfg, callbacks, retry_errored)
                    stopper = restore_stopper(cfg, tuner, mlflow_cb.stopped_by)
                else:
                    log.info(
                        f"search {cfg.name!r}: {planned} trials of {cfg.dataset}, "
                        f"{cfg.search.algorithm} search, {cfg.search.scheduler} scheduler, "
                        f"up to {cfg.epochs} epochs"
                    )
                    stopper = make_stopper(cfg)
                    tuner = make_tuner(cfg, callbacks, stopper, warm)
                if stopper is not None:
                    from tune.fit.stopping import FinishedTrials

                    # First: a trial's end counts towards the plateau before the rest see it.
                    callbacks.insert(0, FinishedTrials(stopper))
                    mlflow_cb.stopper = stopper
                started = time.monotonic()
                with disk_full.armed():  # a full disk stops the fit as SIGINT does
                    results = tuner.fit()
                outcome = outcome_from(results)
                outcome.fit_seconds = time.monotonic() - started
                outcome.search_stop = stopper.fired if stopper is not None else None
                outcome.planned = planned
            outcome.ran_anything = bool(progress.latest)
            outcome.statuses = saved_statuses(path)
        finally:
            # On this thread, the one that holds every handle into Ray (the tuner, its results,
            # the trials the callbacks saw). Ray once stopped on a thread of its own while this
            # one dropped those handles: a handle freed mid-shutdown met a core worker already
            # gone, and Ray ended the whole process (exit 1, no message; a test session died).
            ray.shutdown()
    # Everything the driver still needs is on disk (checkpoints, results) or in `outcome`.
    return outcome
