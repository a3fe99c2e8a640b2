"""CIFAR-10 on one GPU: one trial's time-to-accuracy, and how many trials to pack per GPU.

Needs torch and torchvision only (no Ray, no MLflow), so it runs on a bare GPU host:

    python bench/gpu.py [--data-root DIR] [--out DIR] [--results FILE]  # 200 s + decoding
    python bench/gpu.py --smoke                          # CPU, tiny sizes, < 2 minutes

1. Time-to-accuracy: one trial of the default CIFAR-10 config (configs/cifar10.yaml's `trial:`
   block and the first value of each searched key) on 45,000 train / 5,000 validation images
   decoded from the shared JPEGs, eager and with `torch.compile` (its warm-up counted).
2. Layout and precision: 3-epoch runs in fp32 and in contiguous (NCHW) layout, against the
   default bf16 + channels_last.
3. Packing: 1, 2 and 4 trial processes started together on one GPU, what `gpus_per_trial`
   1, 0.5 and 0.25 do under Ray: aggregate images/s, trials per hour (full trials, each
   paying its start-up and warm-up) and peak GPU memory per trial; eager, then compiled.
   From the best packing: the estimated wall time of configs/cifar10.yaml's 32-trial ASHA search.

`FULL_PLAN` orders the runs so that the figures that matter most come first: a GPU host is lent
for minutes. Figures measured on an H100: BENCHMARKS.md, "One GPU".

Every trial is a separate process running `trainables.loop.train`, as a Ray trial would be. The
compiled runs share one inductor cache under the output folder: the first compile is cold, the
later ones reuse it, as trials of one config on one node would.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from any folder
from bench.common import (  # noqa: E402
    command,
    load,
    machine,
    out_dir,
    result,
    say,
    show_data_progress,
    table,
    unpack_cifar,
)

# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------

# configs/cifar10.yaml's trial (tests/bench/test_gpu.py keeps the two in step). The searched
# keys take their first value, the batch size its larger one and lr about its log-middle.
CIFAR_TRIAL = {
    "width": 64,  # stages of 64, 128, 256 channels
    "convs_per_stage": 2,
    "label_smoothing": 0.1,
    "lr_schedule": "onecycle",
    "weight_decay": 5e-4,
    "activation": "relu",
    "augment": "flip-crop",
    "batch_size": 512,  # images per step
    "lr": 3e-3,  # Adam peak learning rate
    "epochs": 15,  # the search's max epochs
}
# Runs, in order: (label, overrides of the trial, processes started together, epochs). "tta"
# runs are whole trials; the others are short, their first epoch warms up, the rest are steady.
FULL_PLAN = [
    ("tta-eager", {}, 1, None),
    ("tta-compiled", {"compile": True}, 1, None),
    ("fp32", {"precision": "fp32"}, 1, 3),
    ("contiguous", {"channels_last": False}, 1, 3),
    ("pack-eager", {}, 1, 3),
    ("pack-eager", {}, 2, 3),
    ("pack-eager", {}, 4, 3),
    ("pack-compiled", {"compile": True}, 4, 3),
    ("pack-compiled", {"compile": True}, 2, 3),
]
FULL = {
    "per_class": None,  # images unpacked per class; None: all 5,000
    "trial": CIFAR_TRIAL,
    "plan": FULL_PLAN,
    "limit_s": 200,  # stop starting runs after this, and cut a run that would pass it
}
SMOKE = {
    "per_class": 60,  # 540 train / 60 val images
    "trial": {**CIFAR_TRIAL, "width": 8, "convs_per_stage": 1, "batch_size": 64, "epochs": 2},
    # Compiling takes ~70 s on a 2-core CPU: the smoke run leaves it out.
    "plan": [(label, o, n, e and 2) for label, o, n, e in FULL_PLAN if "compile" not in o][:6],
    "limit_s": 100,
    "device": "cpu",
}
THRESHOLDS = (0.90, 0.93, 0.94)  # validation accuracies to report the time to
# configs/cifar10.yaml's search, for the estimate: 32 trials of up to 15 epochs under ASHA with
# tune/config/space.py's grace period 1 and reduction factor 2 (rungs at 1, 2, 4 and 8 epochs).
SEARCH_TRIALS, ASHA_GRACE, ASHA_REDUCTION = 32, 1, 2
POLL_S = 0.01  # seconds between checks of the start signal

# ---------------------------------------------------------------------------------------------
# One trial process
# ---------------------------------------------------------------------------------------------


def worker(spec: dict) -> None:
    """Load the cached data, wait for the start signal, train, write what happened as JSON."""
    import torch

    from trainables.config import TrialConfig
    from trainables.data import load_dataset
    from trainables.loop import train

    cfg = TrialConfig.from_dict(spec["trial"])
    splits = load_dataset("imagefolder", data_root=spec["data_root"], cache_dir=spec["cache"])
    Path(spec["ready"]).touch()
    while not os.path.exists(spec["go"]):
        time.sleep(POLL_S)
    start = time.time()
    epochs = []

    def record(metrics: dict, _snapshot) -> None:
        epochs.append({**metrics, "t": time.time() - start})

    train(cfg, on_epoch=record, splits=splits)
    cuda = torch.cuda.is_available() and cfg.device != "cpu"
    report = {
        "start": start,
        "end": time.time(),
        "epochs": epochs,
        "peak_allocated": torch.cuda.max_memory_allocated() if cuda else None,
        "peak_reserved": torch.cuda.max_memory_reserved() if cuda else None,
    }
    Path(spec["result"]).write_text(json.dumps(report))


# ---------------------------------------------------------------------------------------------
# Runs of n trial processes started together
# ---------------------------------------------------------------------------------------------


def run_pack(
    folder: Path, base: dict, trial: dict, n: int, deadline: float, full_epochs: int
) -> dict[str, object] | None:
    """Start n trial processes, release them together, and summarize; None if cut or failed.

    `full_epochs` is the length of a real trial, for trials per hour (the run may be shorter).
    """
    folder.mkdir(parents=True)
    go = folder / "go"
    procs, specs = [], []
    launched = time.time()
    for i in range(n):
        spec = {
            **base,
            "trial": {**trial, "seed": i},
            "ready": str(folder / f"ready-{i}"),
            "go": str(go),
            "result": str(folder / f"result-{i}.json"),
        }
        log = open(folder / f"log-{i}.txt", "w")  # closed in the `finally` below
        cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
        specs.append(spec)
    try:
        while not all(os.path.exists(s["ready"]) for s in specs):
            if any(p.poll() is not None for p, _ in procs) or time.time() > deadline:
                return failed(folder, procs, "before the start")
            time.sleep(POLL_S)
        setup_s = time.time() - launched  # python, torch and the cached data, all n at once
        go.touch()
        for p, _ in procs:
            p.wait(timeout=max(1.0, deadline - time.time()))
        if any(p.returncode != 0 for p, _ in procs):
            return failed(folder, procs, "while training")
    except subprocess.TimeoutExpired:
        return failed(folder, procs, f"at the time limit; a run with {n} trials does not fit")
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    reports = [json.loads(Path(s["result"]).read_text()) for s in specs]
    return summarize(reports, setup_s, full_epochs)


def failed(folder: Path, procs: list, when: str) -> None:
    say(f"  run in {folder} failed or was cut {when}")
    for i, (p, _) in enumerate(procs):
        if p.poll() is not None and p.returncode != 0:
            say((folder / f"log-{i}.txt").read_text()[-2000:])
    return None


def summarize(reports: list[dict], setup_s: float, full_epochs: int) -> dict[str, object]:
    """Aggregate images/s, steady epoch time, warm-up and trials per hour of one pack."""
    n = len(reports)
    start = min(r["start"] for r in reports)
    wall = max(r["end"] for r in reports) - start
    images = sum(m["train_images"] for r in reports for m in r["epochs"])
    first = sum(r["epochs"][0]["t"] for r in reports) / n  # go -> end of epoch 1, incl. warm-up
    later = [m["epoch_seconds"] for r in reports for m in r["epochs"][1:]]
    steady = sum(later) / len(later) if later else first
    # A full trial: start-up + the first epoch's warm-up + every epoch at the steady pace.
    trial_s = setup_s + (first - steady) + full_epochs * steady
    peaks = [r["peak_reserved"] for r in reports if r["peak_reserved"] is not None]
    allocs = [r["peak_allocated"] for r in reports if r["peak_allocated"] is not None]
    return {
        "n": n,
        "setup_s": setup_s,
        "first_epoch_s": first,
        "steady_epoch_s": steady,
        "images_per_s": images / wall,
        "trial_s": trial_s,
        "trials_per_hour": n * 3600 / trial_s,
        "peak_allocated_mib": max(allocs) / 2**20 if allocs else None,
        "peak_reserved_mib": max(peaks) / 2**20 if peaks else None,
        "epochs": reports[0]["epochs"],
    }


def asha_epochs(trials: int, max_t: int, grace: int, reduction: int) -> float:
    """Epochs an ASHA search spends when each rung keeps the best 1/reduction of its trials."""
    rungs = []
    milestone = grace
    while milestone < max_t:
        rungs.append(milestone)
        milestone *= reduction
    total, alive = 0.0, float(trials)
    for rung in rungs:
        survivors = alive / reduction
        total += (alive - survivors) * rung  # stopped at this rung
        alive = survivors
    return total + alive * max_t


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def keep(path: str, record: dict) -> None:
    """Append one JSON line to `path`."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def reached(epochs: list[dict], threshold: float) -> str:
    hit = next((m for m in epochs if m["val_acc"] >= threshold), None)
    return f"{hit['t']:.1f} s (epoch {hit['epoch']})" if hit else "not reached"


def mib(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", help="folder with train/<class>/*.jpg (default: unpack)")
    parser.add_argument("--out", help="keep data, caches and logs here (default: temporary)")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes: exercise it all")
    parser.add_argument("--results", help="append each run's summary to this file as a JSON line")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # a trial process's JSON spec
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    hp = SMOKE if args.smoke else FULL
    t0 = time.time()
    deadline = t0 + hp["limit_s"]
    trial = {**hp["trial"], "dataset": "imagefolder", "device": hp.get("device", "auto")}
    print(f"machine: {machine()}")
    print(f"command: {command('gpu.py', argv)}\n")
    with out_dir(args.out) as out:
        # Compiled runs write their kernels here, not to /tmp/torchinductor_<user>.
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(out / "inductor-cache"))
        os.environ.setdefault("TRITON_CACHE_DIR", str(out / "triton-cache"))
        if args.data_root:
            root = Path(args.data_root).resolve()
        else:
            root = unpack_cifar(out / "cifar10", hp["per_class"])
        from trainables.data import load_dataset

        splits = load_dataset("imagefolder", data_root=str(root), cache_dir=str(out / "cache"))
        say(f"data: {len(splits.train_y):,} train / {len(splits.val_y):,} val images decoded")
        base = {"data_root": str(root), "cache": str(out / "cache")}

        runs: dict[tuple[str, int], dict | None] = {}
        for label, overrides, n, epochs in hp["plan"]:
            key = (label, n)
            if time.time() > deadline:
                say(f"skipping {label} x{n}: past the {hp['limit_s']} s limit")
                runs[key] = None
                continue
            spec = {**trial, **overrides, "epochs": epochs or trial["epochs"]}
            say(f"{label} x{n}: {spec['epochs']} epochs at {time.time() - t0:.0f} s")
            runs[key] = run_pack(out / f"{label}-{n}", base, spec, n, deadline, trial["epochs"])
            if args.results:  # each figure kept as soon as it exists: a cut run loses no other
                keep(args.results, {"label": label, "n": n, "set": overrides, "run": runs[key]})
        report(runs, hp, trial)
    print(f"\nwall {time.time() - t0:.0f} s; load average at the end: {load()}")
    return 0


def report(runs: dict, hp: dict, trial: dict) -> None:
    """Print the tables and RESULT lines."""
    print(f"trial config: {json.dumps(trial)}\n")
    tta = {mode: runs.get((f"tta-{mode}", 1)) for mode in ("eager", "compiled")}
    rows = []
    for mode, r in tta.items():
        if r is None:
            rows.append([mode, "did not run", "", "", "", "", ""])
            continue
        last = r["epochs"][-1]
        rows.append(
            [mode, last["val_acc"], f"{last['t']:.1f}", f"{r['first_epoch_s']:.1f}",
             f"{r['steady_epoch_s']:.2f}", *(reached(r["epochs"], t) for t in THRESHOLDS[1:])]
        )  # fmt: skip
    header = ["one trial", "val acc", "seconds", "epoch 1 s", "epoch s", "to 0.93", "to 0.94"]
    print("Time-to-accuracy (seconds from the start signal: data to device, warm-up, eval)")
    print(table(header, rows))
    curves = [r["epochs"] for r in tta.values() if r is not None]
    if curves:
        epoch_rows = []
        for i in range(max(len(c) for c in curves)):
            row: list[object] = [i + 1]
            for c in curves:
                row += [f"{c[i]['t']:.1f}", f"{c[i]['val_acc']:.4f}"] if i < len(c) else ["", ""]
            epoch_rows.append(row)
        modes = [m for m, r in tta.items() if r is not None]
        print()
        print(table(["epoch", *(f"{m} {x}" for m in modes for x in ("s", "val acc"))], epoch_rows))

    rows = []
    for (label, n), r in runs.items():
        if label.startswith("tta") or r is None:
            continue
        rows.append([label, n, f"{1 / n:g}", r["steady_epoch_s"], r["images_per_s"]])
    print("\nShort runs (steady epoch = the mean of epochs 2 onwards): layout, precision, packing")
    print(table(["run", "trials", "gpus_per_trial", "epoch s", "images/s (all)"], rows))

    rows = []
    best = None
    for (name, n), r in runs.items():
        if not name.startswith("pack"):
            continue
        mode = name.split("-")[1]
        if r is None:
            rows.append([mode, n, f"{1 / n:g}", "skipped, cut or failed", "", "", "", "", ""])
            continue
        rows.append(
            [mode, n, f"{1 / n:g}", f"{r['setup_s']:.1f}", f"{r['first_epoch_s']:.1f}",
             f"{r['steady_epoch_s']:.2f}", r["images_per_s"], r["trials_per_hour"],
             f"{mib(r['peak_allocated_mib'])} / {mib(r['peak_reserved_mib'])}"]
        )  # fmt: skip
        if best is None or r["trials_per_hour"] > best[1]["trials_per_hour"]:
            best = (mode, r)
    print("\nPacking: n trial processes started together;")
    print(f"trials/h counts full {trial['epochs']}-epoch trials, each paying start-up + warm-up")
    header = ["mode", "trials", "gpus_per_trial", "start-up s", "epoch 1 s", "epoch s",
              "images/s (all)", "trials/h", "peak MiB per trial (alloc / reserved)"]  # fmt: skip
    print(table(header, rows))

    for mode, r in tta.items():
        if r is not None:
            suffix = "" if mode == "eager" else "_compiled"
            result(f"tta_val_acc{suffix}", r["epochs"][-1]["val_acc"])
            result(f"tta_seconds{suffix}", r["epochs"][-1]["t"])
    if best is not None:
        mode, r = best
        epochs = asha_epochs(SEARCH_TRIALS, trial["epochs"], ASHA_GRACE, ASHA_REDUCTION)
        # Every trial pays start-up and warm-up; its epochs run at the packed steady pace.
        overhead = r["setup_s"] + r["first_epoch_s"] - r["steady_epoch_s"]
        minutes = (SEARCH_TRIALS * overhead + epochs * r["steady_epoch_s"]) / r["n"] / 60
        print(
            f"\nBest packing: {r['n']} per GPU ({mode}). A {SEARCH_TRIALS}-trial ASHA "
            f"search (about {epochs:.0f} epochs in all) would take about {minutes:.1f} minutes."
        )
        result("best_pack_trials", r["n"])
        result("best_pack_trials_per_hour", r["trials_per_hour"])
        result("search32_asha_minutes", minutes)


if __name__ == "__main__":
    show_data_progress()
    sys.exit(main())
