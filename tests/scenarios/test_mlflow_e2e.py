"""After a real search on a real local Ray, look at MLflow as an analyst would: through
MlflowClient, `cnn-tune report`, a real `mlflow server`, and the MLflow UI in headless Chromium."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from tests.helpers import DEMO, REPO, cnn_tune_here
from tests.servers import free_port, wait_http

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# 8 trials, 6 of which report a metric: enough for parameter importance.
SPACE = (
    "{activation: [relu, sigmoid, tanh, elu], augment: [none, crop], batch_size: [64], lr: [0.003]}"
)
ARGS = [
    "--set", "epochs=3", "--set", "trial.max_train_images=600", "--set", "trial.width=8",
    "--set", "search.algorithm=grid", "--set", "search.num_samples=1", "--set", f"space={SPACE}",
    "--json",
]  # fmt: skip
FAULT = {"CNN_TUNE_FAULT": "nan@1?activation=sigmoid"}  # sigmoid trials diverge at once
ARTIFACTS_DIR = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def search(tmp_path_factory, shared_ray):
    """One finished search in an embedded sqlite store: (folder, summary JSON)."""
    folder = tmp_path_factory.mktemp("mlflow-e2e")
    registry = ["--set", "mlflow.registered_model=cnn-demo"]
    out = cnn_tune_here(
        "run", str(DEMO), *ARGS, *registry, cwd=folder, env=FAULT, address=shared_ray
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return folder, json.loads(out.stdout)


def runs_of(client: MlflowClient, summary: dict):
    parent = client.get_run(summary["mlflow"]["parent_run_id"])
    children = client.search_runs(
        [summary["mlflow"]["experiment_id"]],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    return parent, children


def test_one_parent_one_child_per_trial(search):
    folder, summary = search
    uri = summary["mlflow"]["tracking_uri"]
    assert uri == f"sqlite:///{folder / 'mlruns.db'}"
    client = MlflowClient(uri)
    exp = client.get_experiment(summary["mlflow"]["experiment_id"])
    assert exp.name == "cnn-tune"
    assert len(client.search_runs([exp.experiment_id])) == 9  # 1 parent + 8 trials

    parent, children = runs_of(client, summary)
    assert parent.info.run_name == "demo-mnist5k"
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert tags["cnn_tune.role"] == "search"
    assert tags["cnn_tune.dataset"] == "mnist5k"
    assert tags["cnn_tune.algorithm"] == "grid" and tags["cnn_tune.scheduler"] == "asha"
    assert tags["cnn_tune.storage_path"] == str(folder / "ray_results")
    assert parent.data.metrics["best_val_acc"] == pytest.approx(summary["best"]["val_acc"])

    assert len(children) == 8
    assert len({c.data.tags["cnn_tune.trial_id"] for c in children}) == 8
    # MLflow's own conventions, on the parent and on every child.
    for run in (parent, *children):
        t = run.data.tags
        assert t["mlflow.user"] and t["mlflow.source.type"] == "LOCAL"
        assert t["mlflow.source.name"].startswith("cnn-tune run ")
        assert t["mlflow.source.git.commit"] == tags["cnn_tune.git_commit"]
        inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
        assert set(inputs) == {"mnist5k/train", "mnist5k/val", "mnist5k/test"}
        assert len({i.dataset.digest for i in inputs.values()}) == 1
        assert len(inputs["mnist5k/train"].dataset.digest) == 32
        assert json.loads(inputs["mnist5k/val"].dataset.profile)["num_rows"] == 500
    found = client.search_runs(
        [exp.experiment_id], filter_string="tags.`cnn_tune.search` = 'demo-mnist5k'"
    )
    assert {r.info.run_id for r in found} == {c.info.run_id for c in children}
    reasons = {}
    for child in children:
        t, p = child.data.tags, child.data.params
        assert t["cnn_tune.role"] == "trial"
        assert t["cnn_tune.node"]
        assert child.info.run_name == f"{p['activation']}-{p['augment']}-bs64-lr3.0e-03"
        for key in ("activation", "augment", "batch_size", "lr", "width", "epochs", "seed"):
            assert key in p
        reason = t["cnn_tune.stop_reason"]
        reasons[child.info.run_id] = reason
        expected_status = {"completed": "FINISHED", "scheduler": "FINISHED", "diverged": "FAILED"}
        assert child.info.status == expected_status[reason], (reason, child.info.status)
        if p["activation"] == "sigmoid":
            assert reason == "diverged"
        # Per-epoch histories: one point per epoch, steps 1..n, no duplicates.
        for metric in ("train_loss", "val_loss", "val_acc", "epoch_seconds", "images_per_s"):
            steps = [m.step for m in client.get_metric_history(child.info.run_id, metric)]
            assert sorted(steps) == list(range(1, len(steps) + 1)), (metric, steps)
        if reason == "completed":
            assert "test_acc" in child.data.metrics
        if reason != "diverged":
            best = max(m.value for m in client.get_metric_history(child.info.run_id, "val_acc"))
            assert child.data.metrics["best_val_acc"] == pytest.approx(best)
        assert t["mlflow.note.content"].startswith(f"Trial `{t['cnn_tune.trial_id']}`")
    assert "diverged" in reasons.values() and "completed" in reasons.values()
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("**Search `demo-mnist5k`** ended: 8 trials")
    assert f"**Best**: trial `{summary['best']['trial_id']}`" in note
    assert "cnn-tune train --set" in note and "**What mattered**" in note
    assert not [r for r in client.search_runs([exp.experiment_id]) if r.info.status == "RUNNING"]


def test_artifacts_and_best_model(search):
    import mlflow
    import mlflow.pytorch

    _, summary = search
    client = MlflowClient(summary["mlflow"]["tracking_uri"])
    parent, children = runs_of(client, summary)
    parent_files = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert parent_files >= {
        "plots/parallel_coordinates.png", "plots/heatmap_activation_augment.png",
        "plots/metric_vs_lr.png", "plots/augmentations.png", "plots/trials.csv",
        "plots/param_importance.png", "plots/accuracy_vs_cost.png",
    }  # fmt: skip
    # Which hyperparameter mattered: every searched key has an importance.
    importance = {k: v for k, v in parent.data.metrics.items() if k.startswith("importance_")}
    assert set(importance) == {"importance_activation", "importance_augment"}
    assert sum(importance.values()) == pytest.approx(1.0)
    # What accuracy cost: the Pareto front's trials are tagged, the best one among them.
    pareto = {
        c.data.tags["cnn_tune.trial_id"] for c in children if "cnn_tune.pareto" in c.data.tags
    }
    assert summary["best"]["trial_id"] in pareto
    # The trials as an MLflow table, beside the CSV.
    assert "trials_table.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "search_config.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    for child in children:
        files = {a.path for a in client.list_artifacts(child.info.run_id, "plots")}
        assert "plots/learning_curves.png" in files

    best = next(
        c for c in children if c.data.tags["cnn_tune.trial_id"] == summary["best"]["trial_id"]
    )
    files = {a.path for a in client.list_artifacts(best.info.run_id, "plots")}
    assert {"plots/confusion_val.png", "plots/confusion_test.png"} <= files
    assert best.data.params["activation"] != "sigmoid"  # sigmoid trials diverged: never best

    mlflow.set_tracking_uri(summary["mlflow"]["tracking_uri"])
    uri = f"runs:/{best.info.run_id}/model"
    signature = mlflow.models.get_model_info(uri).signature
    assert tuple(signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == (-1, 1, 28, 28)
    model = mlflow.pytorch.load_model(uri)
    with torch.no_grad():
        assert model(torch.rand(5, 1, 28, 28)).shape == (5, 10)
        assert model(torch.rand(1, 1, 28, 28)).shape == (1, 10)
    predict = mlflow.pyfunc.load_model(uri).predict
    assert predict(np.random.rand(3, 1, 28, 28).astype("float32")).shape == (3, 10)
    # Logged as a pt2 graph: it loads where cnn-tune's own modules cannot be imported.
    load_without_us = (
        "import sys; sys.modules['trainables'] = sys.modules['tune'] = None\n"
        "import mlflow, torch\n"
        f"mlflow.set_tracking_uri({summary['mlflow']['tracking_uri']!r})\n"
        f"model = mlflow.pytorch.load_model({uri!r})\n"
        "print(tuple(model(torch.rand(3, 1, 28, 28)).shape))"
    )
    out = subprocess.run(
        [sys.executable, "-c", load_without_us], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0 and "(3, 10)" in out.stdout, out.stderr[-2000:]

    # Registered under the configured name, from the best trial's run.
    versions = client.search_model_versions("name = 'cnn-demo'")
    assert [v.run_id for v in versions] == [best.info.run_id]
    assert {
        "cnn_tune.search": "demo-mnist5k",
        "cnn_tune.parent_run_id": parent.info.run_id,
    }.items() <= versions[0].tags.items()
    registered = mlflow.pytorch.load_model("models:/cnn-demo/1")
    with torch.no_grad():
        assert registered(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_report_reads_the_search_back(search):
    folder, summary = search
    out = cnn_tune_here("report", "demo-mnist5k", "--json", cwd=folder)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["trials"] == summary["trials"]
    assert report["best"]["trial_id"] == summary["best"]["trial_id"]
    assert report["best"]["val_acc"] == pytest.approx(summary["best"]["val_acc"])
    missing = cnn_tune_here("report", "no-such-search", cwd=folder)
    assert missing.returncode == 2 and "no search named 'no-such-search'" in missing.stderr


@contextlib.contextmanager
def chromium():
    """The real headless Chromium the suite uses, through its chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1400,900",
    ):  # fmt: skip
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.mark.browser
def test_mlflow_ui_nests_trials_under_the_search(search):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    folder, summary = search
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ui = subprocess.Popen(
        [sys.executable, "-m", "tune.cli", "ui", "--port", str(port)],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        with chromium() as browser:
            experiment = summary["mlflow"]["experiment_id"]
            browser.get(f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs")
            wait = WebDriverWait(browser, 60)
            wait.until(lambda b: "demo-mnist5k" in b.page_source)
            # Collapsed: only the search is a top-level row; its trials are behind its expander.
            assert "relu-crop-bs64" not in browser.page_source
            browser.find_element(
                By.CSS_SELECTOR, "button[data-component-id*=runnamecellrenderer]"
            ).click()
            names = [
                f"{a}-{p}-bs64"
                for a in ("relu", "sigmoid", "tanh", "elu")
                for p in ("none", "crop")
            ]
            wait.until(lambda b: all(n in b.page_source for n in names))
            ARTIFACTS_DIR.mkdir(exist_ok=True)
            browser.save_screenshot(str(ARTIFACTS_DIR / "mlflow-ui-nested-runs.png"))

            # The parent run's page shows the search's note as its description.
            parent = summary["mlflow"]["parent_run_id"]
            browser.get(f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs/{parent}")
            wait.until(lambda b: "ended: 8 trials" in b.page_source)
            assert "cnn-tune train --set" in browser.page_source
            browser.save_screenshot(str(ARTIFACTS_DIR / "mlflow-ui-search-description.png"))
    finally:
        ui.terminate()
        ui.wait(timeout=30)


@pytest.mark.browser
def test_html_report_opens_with_every_row_and_image(search):
    folder, summary = search
    out = cnn_tune_here("report", "demo-mnist5k", "--html", "report.html", cwd=folder)
    assert out.returncode == 0, out.stderr[-2000:]
    page = (folder / "report.html").read_text()
    assert "ended: 8 trials" in page and "cnn-tune train --set" in page
    with chromium() as browser:
        browser.get((folder / "report.html").as_uri())
        rows = browser.execute_script("return document.querySelectorAll('#trials tr.trial').length")
        assert rows == 8
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
        )
        # The parent's 6 plots and the best trial's 3 (curves, val and test confusion).
        assert len(images) >= 9, images
        assert all(complete and width > 0 for _, complete, width in images), images
        assert any("param_importance" in alt for alt, _, _ in images)
        ARTIFACTS_DIR.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS_DIR / "html-report.png"))
    bad = cnn_tune_here(
        "report", "demo-mnist5k", "--html", str(folder / "no" / "r.html"), cwd=folder
    )
    assert bad.returncode == 2 and "does not exist" in bad.stderr


# Half the module's search: what goes to the server (runs, statuses, plots) is the same.
SERVER_ARGS = [*ARGS[:-3], "--set", "space={activation: [relu, sigmoid], augment: [none, crop], "
               "batch_size: [64], lr: [0.003]}", "--json"]  # fmt: skip


def test_search_against_a_real_mlflow_server(tmp_path, ray_address, mlflow_server):
    with mlflow_server as server:
        uri = server.uri
        to_server = ["--set", f"mlflow.tracking_uri={uri}"]
        out = cnn_tune_here(
            "run", str(DEMO), *SERVER_ARGS, *to_server, cwd=tmp_path, env=FAULT,
            address=ray_address,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        summary = json.loads(out.stdout)
        assert summary["mlflow"]["tracking_uri"] == uri
        client = MlflowClient(uri)
        parent, children = runs_of(client, summary)
        assert parent.info.status == "FINISHED" and len(children) == 4
        assert {c.data.tags["cnn_tune.stop_reason"] for c in children} >= {"diverged"}
        assert not (tmp_path / "mlruns.db").exists()  # nothing went to the embedded default
        files = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
        assert "plots/parallel_coordinates.png" in files


def test_unreachable_tracking_server_exits_3_before_any_trial(tmp_path):
    out = cnn_tune_here(
        "run", str(DEMO), "--set", "mlflow.tracking_uri=http://127.0.0.1:9", cwd=tmp_path
    )
    assert out.returncode == 3
    assert "cannot reach the MLflow tracking server" in out.stderr
    assert not (tmp_path / "ray_results").exists()
    assert out.stdout == ""
