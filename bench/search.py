"""A whole search through the real driver: wall time, trials per hour, and Tune's overhead.

Runs `cnn-tune run CONFIG --json` (16 trials of 12 epochs on the embedded MNIST digits by
default, about 2 minutes on 2 cores) in a temporary folder, then reads every trial's
`result.json` under the experiment folder. CONFIG is `BENCH_CONFIG` below, written out by this
script: the demo's settings as they were when the figures in BENCHMARKS.md were first taken, so
the demo can change without moving the baseline. The overhead ratio compares the wall time
with the ideal of perfectly packed trials:

    overhead_ratio = wall / (sum of all trials' epoch_seconds / parallel slots)

where slots = CPUs / cpus_per_trial. 1.0 means no time outside training epochs: no Ray start,
no trial process start, no data loading, no reporting or checkpointing, no idle slot. Ray's own
scalability tests hold Tune to about 1.2.

A search also pays a fixed cost that does not grow with it (`fixed_cost_s`, 15-35 s by
machine): Python and Ray start, a new MLflow store's tables, the best model's upload and the
search's plots, Ray's stop. The same ratio over the trials' span (first trial's start to last
trial's end) leaves that out: it is Tune's own scheduling overhead, what Ray's scalability
tests time. With 4-epoch trials the fixed part is a third of the wall time: `--epochs 4`.

    python bench/search.py [--trials 16] [--epochs 12] [--scheduler fifo] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from any folder
import yaml  # noqa: E402

from bench.common import command, load, machine, out_dir, result, say, table  # noqa: E402

NAME = "bench-search"
# Pinned: configs/demo.yaml as it was at the first figures (issue 6).
BENCH_CONFIG = {
    "name": NAME,
    "dataset": "mnist5k",
    "epochs": 12,
    "trial": {"width": 16},
    "space": {
        "activation": ["relu", "sigmoid", "tanh", "leaky_relu"],
        "augment": ["none", "crop"],
        "batch_size": [64, 128],
        "lr": {"loguniform": [1.0e-4, 1.0e-2]},
    },
    "search": {"num_samples": 16, "algorithm": "random", "scheduler": "fifo"},
    "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
    "mlflow": {"experiment": "cnn-tune"},
}
CPUS_PER_TRIAL = 1  # the demo's resources.cpus_per_trial


def cnn_tune() -> str:
    """The console script of the Python that runs this script (the project's venv)."""
    beside = Path(sys.executable).parent / "cnn-tune"
    found = str(beside) if beside.exists() else shutil.which("cnn-tune")
    if found is None:
        raise SystemExit("cnn-tune not found: pip install -e . in the project's venv first")
    return found


def search_command(folder: Path, trials: int, epochs: int, scheduler: str) -> list[str]:
    """The driver's command line; everything it writes goes under `folder`."""
    sets = {
        "name": NAME,
        "epochs": epochs,
        "search.num_samples": trials,
        "search.scheduler": scheduler,
        "resources.cpus_per_trial": CPUS_PER_TRIAL,
        "storage_path": str(folder / "ray_results"),
        "cache_dir": str(folder / "cache"),
        "mlflow.tracking_uri": f"sqlite:///{folder / 'mlruns.db'}",
    }
    config = folder / "bench-search.yaml"
    config.write_text(yaml.safe_dump(BENCH_CONFIG, sort_keys=False))
    command = [cnn_tune(), "run", str(config), "--json"]
    for key, value in sets.items():
        command += ["--set", f"{key}={value}"]
    return command


@dataclass
class TrialTimes:
    """One trial's times from its result.json (Ray's timestamps are whole seconds)."""

    epochs: float  # sum of epoch_seconds: training and evaluation
    total: float  # Ray's time_total_s at the end: also data loading, model, checkpoints
    start: float  # unix time the trial started: first timestamp - its time_this_iter_s
    end: float  # unix time of its last report


def trial_times(experiment: Path) -> dict[str, TrialTimes]:
    """Per trial folder under `experiment`, its times."""
    times = {}
    for path in sorted(experiment.glob("*/result.json")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not rows:
            continue
        first, last = rows[0], rows[-1]
        times[path.parent.name] = TrialTimes(
            epochs=sum(row.get("epoch_seconds", 0.0) for row in rows),
            total=last.get("time_total_s", 0.0),
            start=first.get("timestamp", 0) - first.get("time_this_iter_s", 0.0),
            end=last.get("timestamp", 0),
        )
    return times


def overhead_ratio(wall: float, compute: float, slots: float) -> float:
    """wall / ideal, where ideal = the compute spread evenly over the parallel slots."""
    return wall / (compute / slots)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=16, help="trials (search.num_samples)")
    parser.add_argument("--epochs", type=int, default=12, help="epochs per trial (12: ~10 s)")
    parser.add_argument("--scheduler", choices=("fifo", "asha"), default="fifo")
    parser.add_argument("--out", help="keep the experiment here (default: a temporary folder)")
    args = parser.parse_args(argv)
    for key in ("trials", "epochs"):
        if getattr(args, key) < 1:
            parser.error(f"--{key} must be >= 1, got {getattr(args, key)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"machine: {machine()}")
    print(f"command: {command('search.py', argv)}\n")
    with out_dir(args.out) as folder:
        driver = search_command(folder, args.trials, args.epochs, args.scheduler)
        say("running: " + " ".join(driver))
        start = time.perf_counter()
        done = subprocess.run(driver, cwd=folder, stdout=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            say(done.stdout)
            raise SystemExit(f"cnn-tune run exited {done.returncode}")
        summary = json.loads(done.stdout)
        times = trial_times(Path(summary["experiment_path"]))
    slots = (os.cpu_count() or 1) / CPUS_PER_TRIAL
    total = sum(t.epochs for t in times.values())
    in_trials = sum(t.total for t in times.values())
    span = max(t.end for t in times.values()) - min(t.start for t in times.values())
    ideal = total / slots
    driver_wall = summary["wall_seconds"]
    counts = summary["trials"]
    fixed = wall - span
    # Slot time per trial outside its epochs: what Tune, the trial's start and its reports cost.
    per_trial = (span * slots - total) / max(1, len(times))
    mlflow = summary["mlflow"]
    rows = [
        [
            "trials run",
            f"{len(times)} ({counts['finished']} finished, "
            f"{counts['stopped_early']} stopped early, {counts['failed']} failed)",
        ],
        ["parallel slots (CPUs / cpus_per_trial)", slots],
        ["trial compute, sum of epoch_seconds (s)", total],
        ["trial time outside epochs, sum (s): data, model, checkpoints", in_trials - total],
        ["ideal wall = compute / slots (s)", ideal],
        ["wall, whole command (s)", wall],
        ["wall, driver's Ray start, Tuner.fit and Ray stop (s)", driver_wall],
        ["first trial's start to last trial's end (s, +-1)", span],
        ["fixed cost: whole command - trials' span (s)", fixed],
        ["overhead per trial: (span x slots - compute) / trials (slot s)", per_trial],
        ["driver's peak resident memory (MiB)", summary.get("driver_peak_rss_mib")],
        ["overhead ratio, whole command", overhead_ratio(wall, total, slots)],
        ["overhead ratio, driver's wall", overhead_ratio(driver_wall, total, slots)],
        ["overhead ratio, trials' span (Tune's scheduling)", overhead_ratio(span, total, slots)],
        ["trials per hour", 3600 * len(times) / wall],
        ["MLflow logging share of the driver's wall", mlflow.get("logging_share")],
        ["MLflow logging, driver's seconds", mlflow.get("logging_seconds")],
        ["best val_acc", summary["best"].get("val_acc")],
    ]
    print(table(["", "value"], rows))
    print(f"\nload average at the end: {load()}")
    result("overhead_ratio", overhead_ratio(wall, total, slots))
    result("overhead_ratio_trials", overhead_ratio(span, total, slots))
    result("trials_per_hour", 3600 * len(times) / wall)
    result("fixed_cost_s", fixed)
    result("overhead_per_trial_s", per_trial)
    if summary.get("driver_peak_rss_mib") is not None:
        result("driver_peak_rss_mib", summary["driver_peak_rss_mib"])
    if mlflow.get("logging_share") is not None:
        result("mlflow_logging_share", mlflow["logging_share"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
