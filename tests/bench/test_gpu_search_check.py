import json

from mlflow import MlflowClient

from bench import gpu_search_check
from bench.common import parse_results


def make_search(uri, children):
    client = MlflowClient(uri)
    exp = client.create_experiment("cnn-tune-cifar10")
    parent = client.create_run(exp, run_name="gpu-proof").info.run_id
    for i in range(children):
        tags = {"mlflow.parentRunId": parent, "cnn_tune.cuda_visible_devices": "0"}
        run = client.create_run(exp, run_name=f"t{i}", tags=tags).info.run_id
        for epoch, acc in enumerate([0.5, 0.6 + i / 100], start=1):
            client.log_metric(run, "val_acc", acc, step=epoch)
        client.log_metric(run, "system/gpu_max_allocated_mib", 843.0)
        client.set_terminated(run)


def test_counts_runs_epochs_and_the_single_process_pace(tmp_path, capsys, blank_sqlite):
    uri = blank_sqlite(tmp_path / "mlruns.db")
    make_search(uri, children=3)
    summary = tmp_path / "search.json"
    summary.write_text(json.dumps({"trials": {"total": 3}, "wall_seconds": 36.0, "best": None}))
    runs = tmp_path / "gpu-runs.jsonl"
    runs.write_text(json.dumps({"label": "pack-eager", "n": 1, "run": {"steady_epoch_s": 0.5}}))
    assert gpu_search_check.main([uri, "cnn-tune-cifar10", str(summary), str(runs)]) == 0
    out = capsys.readouterr().out
    results = parse_results(out)
    assert results["mlflow_trial_runs"] == 3 and results["search_epochs"] == 6
    assert results["search_epochs_per_hour"] == 600  # 6 epochs in 36 s
    assert results["single_process_epochs_per_hour"] == 7200
    assert "| 0 " in out and "843" in out  # the GPU each trial saw, its peak memory


def test_fails_when_mlflow_lacks_a_trial(tmp_path, capsys, blank_sqlite):
    uri = blank_sqlite(tmp_path / "mlruns.db")
    make_search(uri, children=2)
    summary = tmp_path / "search.json"
    summary.write_text(json.dumps({"trials": {"total": 3}, "wall_seconds": 10.0}))
    assert gpu_search_check.main([uri, "cnn-tune-cifar10", str(summary)]) == 1
