"""Deleting a search's MLflow runs: soft (restorable until `mlflow gc`), all or none."""

from __future__ import annotations

from tune.errors import DriverError
from tune.tracking._outbox import PLACEHOLDER
from tune.tracking.run_map import RunMap
from tune.tracking.store import prepare_store, probe_tracking, start_error


def delete_runs(tracking_uri: str | None, runs: RunMap) -> int:
    """Soft-delete the search's parent and child runs; every id is checked before any is
    deleted, so an unreachable store deletes nothing. Returns how many runs were deleted."""
    from mlflow import MlflowClient

    probe_tracking(tracking_uri)  # Unreachable (exit 3) before anything is deleted
    try:
        prepare_store(tracking_uri)
        client = MlflowClient(tracking_uri)
        ids = [runs.parent_run_id]
        ids += [runs.aliases.get(t.run_id, t.run_id) for t in runs.trials.values()]
        ids = [i for i in ids if not i.startswith(PLACEHOLDER)]  # never created
        for run_id in ids:
            client.get_run(run_id)  # each exists, or the error says which does not
        for run_id in ids:
            if client.get_run(run_id).info.lifecycle_stage != "deleted":
                client.delete_run(run_id)
    except DriverError:
        raise
    except Exception as exc:
        raise start_error(exc, tracking_uri) from None
    return len(ids)
