"""A search's child runs as the store holds them, and a run map caught up with them."""

from __future__ import annotations

from typing import Any

from tune.tracking._outbox import PARENT_TAG, TRIAL_TAG
from tune.tracking.run_map import RunMap, TrialRun

# Every epoch of a trial logs it (`trainables.loop`): its last step is the last epoch logged.
EVERY_EPOCH = "epoch_seconds"


def child_runs(client: Any, experiment_id: str, parent_run_id: str) -> list[Any]:
    """Every child run of a parent, page by page: a search may have more than a page holds."""
    children, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
            page_token=token,
        )
        children += page
        token = page.token
        if not token:
            return children


def catch_up(runs: RunMap, client: Any, best_key: str) -> None:
    """Bring a reloaded run map up to the store, in place.

    A map save that met a full disk, or a driver killed between a write and the save, leaves
    the map behind the store: a child run it does not know, or epochs logged after its last
    save. Without this a resume logs such an epoch a second time when Ray re-runs it, or makes
    a second run for the trial.
    """
    for run in child_runs(client, runs.experiment_id, runs.parent_run_id):
        trial_id = run.data.tags.get(TRIAL_TAG)
        if not trial_id:
            continue
        trial = runs.trials.setdefault(trial_id, TrialRun(run.info.run_id))
        if trial.run_id != run.info.run_id:
            continue  # the map names its own run; a stray one is not adopted
        steps = [m.step for m in client.get_metric_history(trial.run_id, EVERY_EPOCH)]
        if steps and max(steps) > trial.last_step:
            trial.last_step = max(steps)
            if best_key in run.data.metrics:
                trial.best = run.data.metrics[best_key]
