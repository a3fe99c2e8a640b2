"""After a GPU search: did MLflow get every run, which GPU did each trial see, what did it use.

    python bench/gpu_search_check.py TRACKING_URI EXPERIMENT SUMMARY.json [GPU_RUNS.jsonl]

Reads the search's JSON summary (`cnn-tune run --json`) and its MLflow experiment, prints one
row per trial (status, epochs, best val_acc, CUDA_VISIBLE_DEVICES, peak GPU memory) and the
search's epochs per hour against one trial process alone (from bench/gpu.py's results file).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from any folder
from bench.common import result, table  # noqa: E402


def main(argv: list[str]) -> int:
    from mlflow.tracking import MlflowClient

    uri, experiment, summary_file = argv[:3]
    summary = json.loads(Path(summary_file).read_text())
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    rows, epochs = [], 0
    for r in sorted(children, key=lambda r: r.info.start_time):
        m, t = r.data.metrics, r.data.tags
        history = client.get_metric_history(r.info.run_id, "val_acc")
        epochs += len(history)
        best = max((h.value for h in history), default=float("nan"))
        rows.append(
            [r.info.run_name, r.info.status, t.get("cnn_tune.stop_reason", "-"), len(history),
             best, t.get("cnn_tune.cuda_visible_devices", "-"),
             m.get("system/gpu_max_allocated_mib", float("nan")),
             m.get("system/peak_rss_mib", float("nan"))]
        )  # fmt: skip
    print(
        table(["run", "status", "stop", "epochs", "best val_acc", "CUDA_VISIBLE_DEVICES",
               "GPU peak MiB", "RSS peak MiB"], rows)
    )  # fmt: skip
    started = summary["trials"]["total"]
    print(f"\nMLflow: {len(runs) - len(children)} parent run(s), {len(children)} trial runs")
    print(f"summary: {started} trials started; best: {json.dumps(summary.get('best'))}")
    result("mlflow_trial_runs", len(children))
    result("search_trials", started)
    result("search_epochs", epochs)
    wall = summary.get("wall_seconds")
    if wall:
        result("search_epochs_per_hour", epochs * 3600 / wall)
        result("search_trials_per_hour", started * 3600 / wall)
    if len(argv) > 3 and Path(argv[3]).exists():
        for line in Path(argv[3]).read_text().splitlines():
            rec = json.loads(line)
            if rec["label"] == "pack-eager" and rec["n"] == 1 and rec["run"]:
                result("single_process_epochs_per_hour", 3600 / rec["run"]["steady_epoch_s"])
    return 0 if len(children) == started else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
