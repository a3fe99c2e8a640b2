"""MLflow writes of one search: a parent run and a nested child run per trial, via the outbox.

No Ray here: the Ray Tune callback that feeds it is `tune.fit.callbacks`.

Design: the driver is the only MLflow writer (a `ray.tune.Callback`), not the trials.
- Workers need no route to the tracking store: an embedded SQLite file on the driver's disk
  works on a cluster, and SQLite keeps its single writer.
- Ray already ships every result to the driver, so logging there costs the trials nothing:
  trials never wait on MLflow, however slow or unreachable the server is.
- The trial -> run map lives in the experiment folder (`RUN_MAP_FILE`) beside Ray's own state,
  so `Tuner.restore` and a new driver reattach to the same parent and child runs, and epochs a
  restored trial re-runs are not logged twice (each run remembers its last logged step).
Per-epoch metrics go in one `log_batch` call per result. Artifacts (curves, confusion matrices,
the best model, search plots) are made once at the end from Ray's full result histories.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from typing import Any

from tune import disk_full
from tune.config.space import HEADLINE_KEYS
from tune.errors import BadInput, DriverError
from tune.logs import get_logger
from tune.metrics import best_of, is_finite_number
from tune.outcomes import ERROR, RUN_STATUS_OF_REASON
from tune.paths import artifact_location, redact_uri, sqlite_file
from tune.tracking._children import catch_up
from tune.tracking._conventions import NOTE, git_commit, source_tags
from tune.tracking._outbox import Outbox
from tune.tracking.run_map import RUN_MAP_FILE, RunMap, TrialRun
from tune.tracking.store import prepare_store, start_error

log = get_logger("mlflow")

TAG = "cnn_tune."
EPOCH_METRICS = (
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "epoch_seconds",
    "images_per_s",
    "lr",
)
SYSTEM = "system/"  # MLflow's prefix for resource metrics: the UI groups them apart
BEST = "best_"  # best_<metric>: a child's best epoch (the UI's table shows only the last value)
FINAL_FLUSH_S = 60.0  # seconds the end of a search keeps sending what an outage queued


def run_name(config: dict[str, Any]) -> str:
    """A child run's name from its headline hyperparameters, e.g. 'relu-crop-bs128-lr3.0e-03'."""
    activation, augment, batch_size, lr = (config.get(key) for key in HEADLINE_KEYS)
    return f"{activation}-{augment}-bs{batch_size}-lr{float(lr or 0):.1e}"


def parent_tags(cfg: Any) -> dict[str, str]:
    """What the parent run records about the search, so a report can read it back."""
    return {
        f"{TAG}role": "search",
        f"{TAG}dataset": cfg.dataset,
        f"{TAG}algorithm": cfg.search.algorithm,
        f"{TAG}scheduler": cfg.search.scheduler,
        f"{TAG}storage_path": cfg.storage_path,
        f"{TAG}metric": cfg.search.metric,
        f"{TAG}mode": cfg.search.mode,
        f"{TAG}searched_keys": ",".join(cfg.searched_keys()),
        f"{TAG}epochs": str(cfg.epochs),
        # the earlier searches whose trials seeded this one (search.warm_start)
        **({f"{TAG}warm_start": ",".join(cfg.search.warm_start)} if cfg.search.warm_start else {}),
    }


class Tracker:
    """Owns every MLflow write of one search; writes go through an on-disk outbox."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        state_dir: str,
        final_flush_s: float = FINAL_FLUSH_S,
    ):
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.state_dir = state_dir
        self.map_path = os.path.join(state_dir, RUN_MAP_FILE)
        try:
            # An embedded store's tables are created under a lock before any client opens it.
            prepare_store(tracking_uri)
            self.client = MlflowClient(tracking_uri)
        except DriverError:
            raise
        except Exception as exc:
            raise start_error(exc, tracking_uri) from None
        self.runs: RunMap | None = None
        self.created_parent = False  # this driver made the parent run (not a reattach)
        self.outbox: Outbox | None = None
        self.seconds = 0.0  # MLflow calls while trials run: runs, params, metrics, statuses
        self.artifact_seconds = 0.0  # plots and the best model
        self.curves_logged: set[str] = set()  # trials whose learning curves are logged
        self.search_name = ""
        self.metric, self.mode = "val_acc", "max"
        self.run_tags: dict[str, str] = {}  # MLflow's conventions, on every run (`start_search`)
        self.inputs: list[dict[str, Any]] = []  # the dataset's splits (`tune.staging`)
        self.final_flush_s = final_flush_s
        # The run map changes on this thread (trial events) and on the outbox's sender (a queued
        # run created): every change and every save holds this lock.
        self.lock = threading.RLock()

    # ------------------------------------------------------------------ parent run

    def start_search(
        self, cfg: Any, config_yaml: str, inputs: list[dict[str, Any]] | None = None
    ) -> RunMap:
        """Create the parent run, or reattach to the one in the state folder's run map.

        The store must answer here (else exit 3, before any trial); later outages only delay
        writes.

        Args:
            inputs: the dataset's splits as MLflow dataset inputs (`tune.staging`), logged on
                the parent and on each child.
        """
        t0 = time.perf_counter()
        self.search_name = cfg.name
        self.metric, self.mode = cfg.search.metric, cfg.search.mode
        self.run_tags = source_tags(git_commit())
        self.inputs = list(inputs or [])
        # The store was probed once by the start's preflight (`tune.preflight`); a server
        # that went away since fails the first call below, as exit 3 all the same.
        try:
            existing = RunMap.load(self.map_path)
        except (OSError, ValueError, TypeError) as exc:
            raise BadInput(
                f"the MLflow run map {self.map_path} is unreadable ({exc}); restore it, or "
                "start afresh with --overwrite (the runs already in MLflow stay)"
            ) from None
        try:
            if existing is not None:
                self.runs = existing
                self._open_outbox()
                self.outbox.flush(force=True)  # what an earlier outage left behind
                # A map that fell behind the store (a full disk, a kill) learns what it missed.
                catch_up(existing, self.client, f"{BEST}{self.metric}")
                self.client.update_run(existing.parent_run_id, status="RUNNING")
                existing.status = "RUNNING"
                self.save_runs()
            else:
                self._create_parent(cfg, config_yaml)
        except DriverError:
            raise
        except Exception as exc:
            raise start_error(exc, self.tracking_uri) from None
        self.seconds += time.perf_counter() - t0
        return self.runs

    def _create_parent(self, cfg: Any, config_yaml: str) -> None:
        experiment = self.client.get_experiment_by_name(self.experiment)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self.client.create_experiment(
                self.experiment, artifact_location=artifact_location(self.tracking_uri)
            )
        )
        from tune.tracking._notes import running_note

        tags = {**parent_tags(cfg), **self.run_tags, NOTE: running_note(cfg)}
        if "mlflow.source.git.commit" in tags:  # our own tag too, which older reports read
            tags[f"{TAG}git_commit"] = tags["mlflow.source.git.commit"]
        parent = self.client.create_run(experiment_id, run_name=cfg.name, tags=tags)
        self.created_parent = True
        self.runs = RunMap(
            redact_uri(self.tracking_uri), experiment_id, parent.info.run_id, status="RUNNING"
        )
        self.save_runs()
        self._open_outbox()
        self.log_inputs(parent.info.run_id)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "search_config.yaml")
            with open(path, "w") as f:
                f.write(config_yaml)
            self.client.log_artifact(parent.info.run_id, path)

    def _open_outbox(self) -> None:
        assert self.runs is not None
        db = sqlite_file(self.tracking_uri)
        self.outbox = Outbox(
            self.client,
            self.state_dir,
            self.runs.aliases,
            self._created,
            lock=self.lock,
            store_path=os.path.dirname(os.path.abspath(db)) if db else None,
        )

    def _created(self, placeholder: str, run_id: str) -> None:
        """A run created from the outbox: swap its placeholder id for the real one."""
        assert self.runs is not None
        with self.lock:
            for trial in self.runs.trials.values():
                if trial.run_id == placeholder:
                    trial.run_id = run_id
        self.save_runs()

    def save_runs(self) -> None:
        """Save the run map; on a full disk the map stays in memory (the search is stopped,
        `tune.disk_full`) and the next save, or a resume's `catch_up`, catches up."""
        assert self.runs is not None
        with self.lock:
            try:
                self.runs.save(self.map_path)
            except OSError as exc:
                if not disk_full.notice(exc, "the MLflow run map"):
                    raise

    def send_in_background(self) -> None:
        """From now on (while trials run) a thread of the outbox sends every write: a trial's
        report never waits on the store, however slow it answers."""
        assert self.outbox is not None
        self.outbox.start_background()

    def send_inline(self) -> None:
        """Back to sending on this thread (the end of a search), after what is queued now has
        had its try."""
        if self.outbox is not None:
            self.outbox.stop_background()
            self.outbox.flush()

    def _submit(self, op: dict[str, Any]) -> Any:
        assert self.outbox is not None
        return self.outbox.submit(op)

    # ------------------------------------------------------------------ child runs

    def trial_started(self, trial_id: str, config: dict[str, Any]) -> str:
        """The child run of a trial: created once, reopened when a trial is restored."""
        from trainables.config import TrialConfig

        assert self.runs is not None
        t0 = time.perf_counter()
        known = self.runs.trials.get(trial_id)
        if known is not None:
            # A restored trial runs again, whatever its run's status when it was stopped; an
            # errored one retried (--retry-errored) sheds its old error.
            if known.reason == ERROR:
                self._submit({"op": "delete_tag", "run_id": known.run_id, "key": f"{TAG}error"})
            known.status = known.reason = None
            self._submit({"op": "update_run", "run_id": known.run_id, "status": "RUNNING"})
            self.save_runs()
            self.seconds += time.perf_counter() - t0
            return known.run_id
        with self.lock:  # the sender may create the run before this thread records it
            run_id = self._submit(
                {
                    "op": "create_run",
                    "experiment_id": self.runs.experiment_id,
                    "run_name": run_name(config),
                    "tags": {
                        **self.run_tags,
                        "mlflow.parentRunId": self.runs.parent_run_id,
                        f"{TAG}role": "trial",
                        f"{TAG}trial_id": trial_id,
                        # a filter finds a search's trials without the parent's id
                        f"{TAG}search": self.search_name,
                    },
                }
            )
            self.runs.trials[trial_id] = TrialRun(run_id)
            self.save_runs()
        self.log_inputs(run_id)
        resolved = TrialConfig.from_dict(config).to_dict()
        params = [[k, str(v)] for k, v in sorted(resolved.items())]
        self._submit({"op": "log_batch", "run_id": run_id, "params": params})
        self.seconds += time.perf_counter() - t0
        return self.runs.trials[trial_id].run_id

    def trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Log one epoch's metrics at step=epoch, once: a re-run epoch is skipped."""
        assert self.runs is not None
        t0 = time.perf_counter()
        trial = self.runs.trials[trial_id]
        epoch = int(result.get("epoch", 0))
        if epoch <= trial.last_step:
            return
        now = int(time.time() * 1000)
        keys = [*EPOCH_METRICS, "test_acc", *(k for k in result if k.startswith(SYSTEM))]
        metrics = [
            [k, float(result[k]), now, epoch]
            for k in keys
            if isinstance(result.get(k), (int, float)) and not isinstance(result.get(k), bool)
        ]
        value = result.get(self.metric)
        if is_finite_number(value):
            value = float(value)
            trial.best = value if trial.best is None else best_of(self.mode, (trial.best, value))
            metrics.append([f"{BEST}{self.metric}", trial.best, now, epoch])
        tags = []
        if trial.last_step == 0:
            tags.append([f"{TAG}node", str(result.get("node_id") or result.get("node_ip"))])
            if result.get("hostname"):
                tags.append([f"{TAG}hostname", str(result["hostname"])])
            if result.get("cuda_visible_devices") is not None:
                tags.append([f"{TAG}cuda_visible_devices", str(result["cuda_visible_devices"])])
        self._submit({"op": "log_batch", "run_id": trial.run_id, "metrics": metrics, "tags": tags})
        # The step is recorded as logged once it is sent or safely queued on disk.
        trial.last_step = epoch
        self.save_runs()
        self.seconds += time.perf_counter() - t0

    def trial_ended(self, trial_id: str, reason: str, error: str | None = None) -> None:
        """Tag why the trial stopped and set its terminal status."""
        assert self.runs is not None
        t0 = time.perf_counter()
        trial = self.runs.trials.get(trial_id)
        if trial is None:
            return
        tags = [[f"{TAG}stop_reason", reason]]
        if error:
            tags.append([f"{TAG}error", error[:5000]])
        trial.status = RUN_STATUS_OF_REASON[reason]
        trial.reason = reason
        self._submit({"op": "log_batch", "run_id": trial.run_id, "tags": tags})
        self._submit({"op": "set_terminated", "run_id": trial.run_id, "status": trial.status})
        self.save_runs()
        self.seconds += time.perf_counter() - t0

    def log_inputs(self, run_id: str) -> None:
        """The dataset's splits as the run's MLflow dataset inputs (the UI's "Datasets")."""
        if self.inputs:
            self._submit({"op": "log_inputs", "run_id": run_id, "datasets": self.inputs})

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        """Tags on any run of the search (notes, the Pareto flag), through the outbox."""
        pairs = [[k, str(v)] for k, v in tags.items()]
        self._submit({"op": "log_batch", "run_id": run_id, "tags": pairs})

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        """Metrics at step 0 on any run of the search (e.g. the parent's importances)."""
        now = int(time.time() * 1000)
        batch = [[k, float(v), now, 0] for k, v in metrics.items()]
        self._submit({"op": "log_batch", "run_id": run_id, "metrics": batch})

    def record_error(self, trial_id: str, error: str) -> None:
        """The error's last line, known for sure only once Ray has written the trial's result."""
        assert self.runs is not None
        if trial_id in self.runs.trials:
            tags = [[f"{TAG}error", error[:5000]]]
            self._submit(
                {"op": "log_batch", "run_id": self.runs.trials[trial_id].run_id, "tags": tags}
            )

    def close_open_trials(self, reason: str = "interrupted") -> None:
        """Leave no child run RUNNING: trials still open when the search stops are KILLED."""
        assert self.runs is not None
        for trial_id, trial in self.runs.trials.items():
            if trial.status is None:
                self.trial_ended(trial_id, reason)

    def reasons(self) -> dict[str, str]:
        """Trial id -> the stop reason recorded when it ended (ended trials only)."""
        assert self.runs is not None
        return {tid: t.reason for tid, t in self.runs.trials.items() if t.reason}

    def open_trials(self) -> list[str]:
        assert self.runs is not None
        return [tid for tid, trial in self.runs.trials.items() if trial.status is None]

    def run_id(self, trial_id: str) -> str:
        """The real run id of a trial (after any queued creation went through)."""
        assert self.runs is not None and self.outbox is not None
        return self.outbox.resolve(self.runs.trials[trial_id].run_id)

    # ------------------------------------------------------------------ end of search

    def log_artifacts(
        self, run_id: str, paths: list[str], artifact_path: str | None = None
    ) -> None:
        t0 = time.perf_counter()
        for path in paths:
            self._submit(
                {
                    "op": "log_artifact",
                    "run_id": run_id,
                    "path": path,
                    "artifact_path": artifact_path,
                }
            )
        self.artifact_seconds += time.perf_counter() - t0

    def discard_new_search(self) -> None:
        """Soft-delete the parent run this driver created for a start that failed before any
        trial (restorable until `mlflow gc`); a store that does not answer keeps it KILLED."""
        if not self.created_parent or self.runs is None:
            return
        try:
            self.client.delete_run(self.runs.parent_run_id)
        except Exception as exc:  # the start's own error is the one to report
            log.warning(f"could not delete the failed start's parent run: {redact_uri(str(exc))}")

    def finish_search(
        self, metrics: dict[str, float], status: str, stopped_by: str | None = None
    ) -> None:
        """Log the search's headline metrics (and what stopped it), end the parent run, and send
        what is queued."""
        assert self.runs is not None and self.outbox is not None
        now = int(time.time() * 1000)
        batch = [[k, float(v), now, 0] for k, v in metrics.items() if v is not None]
        tags = [[f"{TAG}stopped_by", stopped_by]] if stopped_by else []
        parent = self.runs.parent_run_id
        if batch or tags:
            self._submit({"op": "log_batch", "run_id": parent, "metrics": batch, "tags": tags})
        self._submit({"op": "set_terminated", "run_id": parent, "status": status})
        self.runs.finished = status == "FINISHED"
        self.runs.stopped_by = stopped_by
        self.runs.status = status
        self.save_runs()
        # A short outage near the end needs no resume: keep trying for a while. Not when the
        # search was interrupted: whoever stopped it wants the command back; resume sends it.
        self.outbox.send_backlog(0 if status == "KILLED" else self.final_flush_s)

    def unsent(self) -> int:
        return self.outbox.pending() if self.outbox is not None else 0

    def info(self) -> dict[str, Any]:
        return {
            "tracking_uri": redact_uri(self.tracking_uri),
            "experiment_id": self.runs.experiment_id if self.runs else None,
            "parent_run_id": self.runs.parent_run_id if self.runs else None,
            "logging_seconds": round(self.seconds, 3),
            "artifact_seconds": round(self.artifact_seconds, 3),
            "unsent_records": self.unsent(),
            "lost_records": self.outbox.lost if self.outbox is not None else 0,
            "rejected_records": self.outbox.set_aside if self.outbox is not None else 0,
        }
