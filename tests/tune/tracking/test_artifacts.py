"""tune.tracking.artifacts: the warm-up of the end of a search, and the best model's run keeping
the status its search decided (the rest is covered end to end in test_mlflow_e2e.py and
test_runs.py)."""

from __future__ import annotations

import subprocess
import sys

from mlflow import MlflowClient

from tests.helpers import REPO
from tests.tracking_cases import CFG, TRIAL, result
from tests.trainables.raw_files import write_image_folder


def test_the_warm_up_loads_what_the_end_of_a_search_needs():
    code = (
        "import sys, torch\n"
        "assert 'torch._dynamo' not in sys.modules  # torch.export starts it on first use\n"
        "from tune.tracking.artifacts import warm_up_search_end\n"
        "warm_up_search_end()\n"
        "wanted = {'torch._dynamo', 'torchvision', 'mlflow.pytorch', 'sklearn.ensemble'}\n"
        "print(sorted(wanted & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "['mlflow.pytorch', 'sklearn.ensemble', 'torch._dynamo', 'torchvision']" in out.stdout


def test_a_failed_warm_up_is_not_an_error(monkeypatch):
    import torch

    from tune.tracking.artifacts import warm_up_search_end

    def broken(*_args, **_kwargs):
        raise RuntimeError("no export on this build")

    monkeypatch.setattr(torch.export, "export", broken)
    warm_up_search_end()  # returns: the end of the search pays the cost instead


def test_the_best_models_run_keeps_the_status_its_search_gave_it(store, tmp_path, monkeypatch):
    """The run's end may still wait in the outbox when the model is logged, and land while the
    model is exported (another thread sends it). The status put back afterwards is the one the
    search decided, not one read before that: the outage test (CI of 88d3b73) found the best
    trial's run left RUNNING."""
    import mlflow.pytorch

    from trainables.config import TrialConfig
    from trainables.data import dataset_from_config
    from trainables.model import make_model
    from tune.tracking import artifacts
    from tune.tracking.tracker import Tracker

    uri, folder = store
    tracker = Tracker(uri, "cnn-tune", folder)
    tracker.start_search(CFG, "name: s1\n")
    run_id = tracker.trial_started("t", TRIAL)
    tracker.trial_result("t", result(1, 0.5))
    tracker.trial_ended("t", "completed")  # the search's word: FINISHED
    client = MlflowClient(uri)
    client.update_run(run_id, "RUNNING")  # ... which the store has not had yet

    real = mlflow.pytorch.log_model

    def end_lands_during_the_export(*args, **kwargs):
        client.set_terminated(run_id, "FINISHED")  # the outbox's queued end goes out now
        return real(*args, **kwargs)

    monkeypatch.setattr(mlflow.pytorch, "log_model", end_lands_during_the_export)
    write_image_folder(tmp_path / "raw", per_class=4)
    cfg = TrialConfig(dataset="imagefolder", data_root=str(tmp_path / "raw"),
                      cache_dir=str(tmp_path / "c"), image_size=12, image_mode="L",
                      val_fraction=0.25, width=8)  # fmt: skip
    splits = dataset_from_config(cfg)
    model = make_model(cfg, splits.channels, splits.num_classes).eval()
    decided = tracker.runs.trials["t"].status  # what `log_best_model` passes
    artifacts.log_model(tracker, run_id, model, splits, None, status=decided)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    logged = client.search_logged_models([run.info.experiment_id])
    assert [m.source_run_id for m in logged] == [run_id]
