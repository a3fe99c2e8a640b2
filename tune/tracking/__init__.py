"""Everything that talks to MLflow, behind the small surface named here.

A search's parent and child runs, the run map that ties them to Ray's folder, the outbox that
queues writes through an outage, the store, the runs' notes, artifacts and plots, and the reports
read back from the runs. `_name` modules are this package's own helpers.

The names below are the surface the rest of cnn-tune uses; the modules hold the rest. This is the
only package that imports `mlflow`. It may import `tune.config`, `tune.outcomes`, `tune.summary`
and the flat helpers (`paths`, `errors`, `logs`, `disk_full`, ...), and Ray's `Callback` for the
one callback it hands the fit (`ray_callback`), never `tune.fit`.
"""

from tune.tracking.artifacts import log_trial_curve, warm_up_search_end
from tune.tracking.deletion import delete_runs
from tune.tracking.html_report import write_html_report
from tune.tracking.report import ReportError, load_report, param_value, read_search
from tune.tracking.run_map import RUN_MAP_FILE, RunMap, TrialRun
from tune.tracking.runs import abandon_runs, close_runs, open_runs, settle_runs
from tune.tracking.server import ServerSettings, serve
from tune.tracking.store import prepare_store, probe_tracking, start_error
from tune.tracking.tracker import TAG, Tracker


def __getattr__(name: str):
    # The Ray callback is loaded on first use: `list`, `report` and `delete` import this package
    # and must not pay for importing Ray Tune.
    if name == "MlflowTrialCallback":
        from tune.tracking.ray_callback import MlflowTrialCallback

        return MlflowTrialCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RUN_MAP_FILE",
    "TAG",
    "MlflowTrialCallback",
    "ReportError",
    "RunMap",
    "ServerSettings",
    "Tracker",
    "TrialRun",
    "abandon_runs",
    "close_runs",
    "delete_runs",
    "load_report",
    "log_trial_curve",
    "open_runs",
    "param_value",
    "prepare_store",
    "probe_tracking",
    "read_search",
    "serve",
    "settle_runs",
    "start_error",
    "warm_up_search_end",
    "write_html_report",
]
