"""The run map: what ties an experiment's folder to its MLflow runs, saved after every change."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from trainables.files import atomic_write

RUN_MAP_FILE = "cnn_tune_mlflow.json"  # in the experiment's state folder


@dataclass
class TrialRun:
    run_id: str
    last_step: int = 0  # last epoch logged: a restored trial's re-run epochs are skipped
    status: str | None = None  # terminal MLflow status once set
    reason: str | None = None  # why it ended (tune.outcomes), once it has
    best: float | None = None  # the search metric's best value so far (`best_<metric>`)


@dataclass
class RunMap:
    """What ties an experiment folder to its MLflow runs; saved after every change."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    trials: dict[str, TrialRun] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # queued run's placeholder -> real id
    finished: bool = False  # the search ended and its artifacts were logged
    # Seconds Ray's fit ran, over every run and resume of the search: what a time budget spends.
    fit_seconds: float = 0.0
    # The trial whose model is logged (and registered) on its run: logged once, retried on the
    # next resume when it failed.
    model_of: str | None = None
    # What ended the search early (budget, target, plateau), once it ended: a resume of a
    # search a `search.stop` rule ended stops again at once.
    stopped_by: str | None = None
    # The parent run's status as this driver last set it: RUNNING while a driver works on it
    # (or after one died), then FINISHED, FAILED or KILLED.
    status: str | None = None

    @classmethod
    def load(cls, path: str) -> RunMap | None:
        if not os.path.exists(path):
            return None
        with open(path) as f:
            data = json.load(f)
        data["trials"] = {k: TrialRun(**v) for k, v in data.get("trials", {}).items()}
        return cls(**data)

    def save(self, path: str) -> None:
        # A crash or a full disk leaves the old map whole, never a cut one.
        with atomic_write(path) as f:
            json.dump(asdict(self), f, indent=1)
