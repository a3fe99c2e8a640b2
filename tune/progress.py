"""A compact live view of a running search on stderr (stdout stays for the JSON summary).

A Ray Tune callback on the driver: each reported epoch and each trial ending prints one line
with the trial's searched values and the search's running counts. On a terminal the trial
table is also redrawn every `TABLE_EVERY_S` seconds.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ray.tune import Callback

TABLE_EVERY_S = 30.0  # seconds between full trial tables on a terminal


def describe(config: dict[str, Any], keys: list[str]) -> str:
    """Short text of a trial's searched values, e.g. 'relu crop bs=64 lr=1.2e-03'."""
    parts = []
    for key in keys:
        value = config.get(key)
        if isinstance(value, float):
            value = f"{value:.1e}"
        parts.append(f"{key}={value}")
    return " ".join(parts)


class ProgressCallback(Callback):
    """Prints one line per epoch result and per trial end, plus periodic tables."""

    def __init__(
        self, searched_keys: list[str], epochs: int, total: int, stream: TextIO | None = None
    ):
        self.keys = searched_keys
        self.epochs = epochs
        self.total = total
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.last_table = self.start
        self.latest: dict[str, dict[str, Any]] = {}  # trial id -> last result
        self.ended: dict[str, str] = {}  # trial id -> how it ended

    def _say(self, text: str) -> None:
        elapsed = time.monotonic() - self.start
        print(f"[{elapsed:6.0f}s] {text}", file=self.stream, flush=True)

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
        if self.stream.isatty() and time.monotonic() - self.last_table > TABLE_EVERY_S:
            self.last_table = time.monotonic()
            self._table(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = self.latest.get(trial.trial_id) or getattr(trial, "last_result", None) or {}
        epoch = result.get("epoch", 0)
        how = (
            "diverged"
            if result.get("diverged")
            else ("done" if epoch >= self.epochs else "stopped")
        )
        self.ended[trial.trial_id] = how
        self._say(f"{how:8} {trial.trial_id}  after {epoch} epochs  ({self._counts()})")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ended[trial.trial_id] = "error"
        self._say(f"error    {trial.trial_id}  ({self._counts()})")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._say(f"retry    {trial.trial_id}  from its latest checkpoint")

    def _table(self, trials: list) -> None:
        for trial in trials:
            result = self.latest.get(trial.trial_id, {})
            print(
                f"    {trial.trial_id:24} {trial.status:10} {describe(trial.config, self.keys):50} "
                f"ep {result.get('epoch', 0)}  val_acc {result.get('val_acc', float('nan')):.4f}",
                file=self.stream,
            )
