"""`cnn-tune report`: a search's summary read back from its MLflow runs.

MLflow is the record analysts share, so the report is rebuilt from it (not from Ray's files,
which may live on a cluster): the parent run named after the search and its child runs. The
metric, mode and searched keys the search ran with are read from the parent run's tags, so the
report ranks trials as `run` did.
"""

from __future__ import annotations

from typing import Any

from tune.config.space import HEADLINE_KEYS
from tune.errors import BadInput
from tune.outcomes import TrialRecord
from tune.paths import experiment_path, redact_uri
from tune.summary import Summary, summarize
from tune.tracking._children import child_runs
from tune.tracking.store import prepare_store
from tune.tracking.tracker import TAG

# What a parent run logged before it carried its metric, mode and searched keys as tags.
UNTAGGED = {"metric": "val_acc", "mode": "max", "searched_keys": ",".join(HEADLINE_KEYS)}


class ReportError(BadInput, LookupError):
    """No search of that name in the tracking store (exit 2)."""


def param_value(value: str | None) -> Any:
    """A parameter back from MLflow, which stores every one as a string: None, bool, int, float
    or the string itself."""
    if value is None or value == "None":
        return None
    if value in ("True", "False"):
        return value == "True"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def find_parent_run(client: Any, experiment: str, name: str) -> Any:
    """The newest parent run named `name` in `experiment`."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ReportError(f"no MLflow experiment {experiment!r} in this tracking store")
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{TAG}role` = 'search' and attributes.run_name = '{name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise ReportError(f"no search named {name!r} in MLflow experiment {experiment!r}")
    return runs[0]


def load_report(tracking_uri: str, experiment: str, name: str) -> Summary:
    """Rebuild a search's summary (finished or still running) from its MLflow runs."""
    client, parent, children = read_search(tracking_uri, experiment, name)
    return summary_of_runs(client, parent, children, tracking_uri, name)


def read_search(tracking_uri: str, experiment: str, name: str) -> tuple[Any, Any, list[Any]]:
    """(client, parent run, child runs) of the newest search named `name`."""
    from mlflow import MlflowClient

    prepare_store(tracking_uri)
    client = MlflowClient(tracking_uri)
    parent = find_parent_run(client, experiment, name)
    children = child_runs(client, parent.info.experiment_id, parent.info.run_id)
    return client, parent, children


def summary_of_runs(
    client: Any, parent: Any, children: list[Any], tracking_uri: str, name: str
) -> Summary:
    """The summary of a search from its parent and child runs (`read_search`)."""
    records, epochs = [], 1
    ran_with = {key: parent.data.tags.get(f"{TAG}{key}", UNTAGGED[key]) for key in UNTAGGED}
    for run in children:
        tags, params, metrics = run.data.tags, run.data.params, dict(run.data.metrics)
        epochs = max(epochs, int(params.get("epochs", 1)))
        history = client.get_metric_history(run.info.run_id, "val_acc")
        reason = tags.get(f"{TAG}stop_reason")
        metrics["epoch"] = max((m.step for m in history), default=0)
        metrics["diverged"] = reason == "diverged"
        error = tags.get(f"{TAG}error") or ("error" if reason == "error" else None)
        config = {k: param_value(v) for k, v in params.items()}
        records.append(
            TrialRecord(tags.get(f"{TAG}trial_id", run.info.run_id), config, metrics, error)
        )
    start, end = parent.info.start_time, parent.info.end_time
    storage_path = parent.data.tags.get(f"{TAG}storage_path", "")
    summary = summarize(
        records,
        name=name,
        epochs=int(parent.data.tags.get(f"{TAG}epochs", epochs)),
        metric=ran_with["metric"],
        mode=ran_with["mode"],
        searched_keys=[key for key in ran_with["searched_keys"].split(",") if key],
        wall_seconds=((end or start) - start) / 1000 if start else 0.0,
        storage_path=storage_path,
        experiment_path=experiment_path(storage_path, name),
        mlflow={
            "tracking_uri": redact_uri(tracking_uri),
            "experiment_id": parent.info.experiment_id,
            "parent_run_id": parent.info.run_id,
            "status": parent.info.status,
        },
    )
    running = {r.data.tags.get(f"{TAG}trial_id") for r in children if r.info.status == "RUNNING"}
    for row in summary.trials:
        if row["trial_id"] in running:
            row["outcome"] = "running"
    return summary
