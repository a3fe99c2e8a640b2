"""The Ray Tune callbacks on the driver that need no tracking: progress lines, whole result logs.

Each sees every trial event Ray sends the driver. Progress lines go through the `cnn_tune`
logger (stderr; stdout stays for the JSON summary): one per reported epoch and per trial end,
with the search's running counts, and on a terminal a trial table every `TABLE_EVERY_S`.
`KeepResultLogs` keeps Ray's result logs whole across a trial's retry. The callback that logs
to MLflow is the tracking wing's (`tune.tracking.ray_callback`), handed to the fit ready made.
"""

from __future__ import annotations

import logging
import os
import posixpath
import sys
import time
from typing import Any

from ray.tune import Callback

from tune import disk_full
from tune.logs import get_logger
from tune.outcomes import ERROR, PROGRESS_WORD_OF_REASON, stop_reason

TABLE_EVERY_S = 30.0  # seconds between full trial tables on a terminal

log = get_logger("progress")


def describe(config: dict[str, Any], keys: list[str]) -> str:
    """Short text of a trial's searched values, e.g. 'activation=relu lr=1.2e-03'."""
    parts = []
    for key in keys:
        value = config.get(key)
        if isinstance(value, float):
            value = f"{value:.1e}"
        parts.append(f"{key}={value}")
    return " ".join(parts)


class ProgressCallback(Callback):
    """One line per epoch result and per trial end, plus periodic tables on a terminal."""

    def __init__(self, searched_keys: list[str], epochs: int, total: int) -> None:
        self.keys = searched_keys
        self.epochs = epochs
        self.total = total
        self.start = time.monotonic()
        self.last_table = self.start
        self.latest: dict[str, dict[str, Any]] = {}  # trial id -> last result
        self.ended: dict[str, str] = {}  # trial id -> stop reason

    def _say(self, text: str) -> None:
        elapsed = time.monotonic() - self.start
        log.info(f"[{elapsed:6.0f}s] {text}")

    def _counts(self) -> str:
        running = len(self.latest) - len(self.ended)
        return f"{len(self.ended)}/{self.total} done, {running} running"

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.latest.setdefault(trial.trial_id, {})
        self._say(
            f"start    {trial.trial_id}  {describe(trial.config, self.keys)}  ({self._counts()})"
        )

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self.latest[trial.trial_id] = result
        flag = "  DIVERGED" if result.get("diverged") else ""
        self._say(
            f"epoch {result.get('epoch', '?')}/{self.epochs} {trial.trial_id}  "
            f"val_acc {result.get('val_acc', float('nan')):.4f}  "
            f"val_loss {result.get('val_loss', float('nan')):.4f}  "
            f"{result.get('images_per_s', 0):.0f} img/s{flag}  ({self._counts()})"
        )
        if _on_terminal() and time.monotonic() - self.last_table > TABLE_EVERY_S:
            self.last_table = time.monotonic()
            self._table(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = self.latest.get(trial.trial_id) or getattr(trial, "last_result", None) or {}
        reason = stop_reason(result, self.epochs)
        self.ended[trial.trial_id] = reason
        word = PROGRESS_WORD_OF_REASON[reason]
        self._say(
            f"{word:8} {trial.trial_id}  after {result.get('epoch', 0)} epochs  ({self._counts()})"
        )

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ended[trial.trial_id] = ERROR
        self._say(f"error    {trial.trial_id}  ({self._counts()})")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._say(f"retry    {trial.trial_id}  from its latest checkpoint")

    def _table(self, trials: list) -> None:
        for trial in trials:
            result = self.latest.get(trial.trial_id, {})
            log.info(
                f"    {trial.trial_id:24} {trial.status:10} {describe(trial.config, self.keys):50} "
                f"ep {result.get('epoch', 0)}  val_acc {result.get('val_acc', float('nan')):.4f}"
            )


RESULT_LOGS = ("result.json", "progress.csv")  # what Ray's logger callbacks restore on a retry


class KeepResultLogs(Callback):
    """A retried trial keeps every epoch in Ray's result logs (`result.json`, `progress.csv`).

    When a failed trial restarts from its checkpoint, Ray's logger callbacks copy its result
    logs back from storage over the driver's copies (`LoggerCallback._restore_from_remote`).
    The storage copy is only as fresh as Ray's last background sync of the experiment folder
    (every 10 s or more), so a trial that failed soon after a report lost that report from
    its `result.json` whenever a sync had run between its start and that report: load decides.
    Ray calls `on_trial_recover` on this thread after it requeues the trial and before it can
    start it again, so the driver's copies, uploaded here, are the ones restored.
    """

    def on_trial_recover(self, iteration, trials, trial, **info):
        try:
            upload_result_logs(trial)
        except Exception as exc:  # the retry goes on; only Ray's log may miss epochs
            if not disk_full.notice(exc, f"trial {trial.trial_id}'s result log"):
                log.warning(f"could not save trial {trial.trial_id}'s result log: {exc}")


def upload_result_logs(trial: Any) -> list[str]:
    """Copy the trial's result logs from the driver's folder to its storage folder, after any
    sync Ray still has in flight (which would land older lines on top). Returns the names
    copied."""
    import pyarrow.fs

    storage = trial.storage
    syncer = getattr(storage, "syncer", None)
    try:
        if syncer is not None:
            syncer.wait()
    except Exception as exc:  # that earlier sync failed: the copy below is the one that counts
        log.debug(f"Ray's last sync of the experiment folder failed: {exc}")
    fs = storage.storage_filesystem
    copied = []
    for name in RESULT_LOGS:
        local = os.path.join(trial.local_path, name)
        remote = posixpath.join(storage.trial_fs_path, name)
        if not os.path.exists(local):
            continue
        if isinstance(fs, pyarrow.fs.LocalFileSystem) and os.path.exists(remote):
            if os.path.samefile(local, remote):
                continue  # the driver writes straight into storage: nothing is stale
        pyarrow.fs.copy_files(local, remote, destination_filesystem=fs)
        copied.append(name)
    return copied


def _on_terminal() -> bool:
    return sys.stderr.isatty() and log.isEnabledFor(logging.INFO)
