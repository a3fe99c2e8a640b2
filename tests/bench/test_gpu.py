import subprocess
import sys

import pytest
import yaml

from bench import gpu
from bench.common import REPO


def test_the_trial_is_configs_cifar10():
    config = yaml.safe_load((REPO / "configs" / "cifar10.yaml").read_text())
    for key, value in config["trial"].items():
        assert gpu.CIFAR_TRIAL[key] == pytest.approx(value), key
    assert gpu.CIFAR_TRIAL["epochs"] == config["epochs"]
    space = config["space"]
    for key in ("activation", "augment", "batch_size"):
        assert gpu.CIFAR_TRIAL[key] in space[key], key
    low, high = space["lr"]["loguniform"]
    assert low <= gpu.CIFAR_TRIAL["lr"] <= high


def test_asha_epoch_count():
    # 32 trials, rungs at 1, 2, 4, 8 epochs keeping half: 16 stop at 1, 8 at 2, 4 at 4, 2 at 8.
    assert gpu.asha_epochs(32, 15, 1, 2) == pytest.approx(16 * 1 + 8 * 2 + 4 * 4 + 2 * 8 + 2 * 15)
    assert gpu.asha_epochs(8, 4, 4, 2) == 8 * 4  # no rung below max_t: every trial runs it all


def test_runs_without_ray_or_mlflow():
    code = (
        "import sys, bench.gpu, trainables.loop, trainables.data;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('ray', 'mlflow')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_a_pack_of_two_trial_processes_on_cpu(tiny_folder, tmp_path):
    # Two real trial processes started together: the worker protocol and the summary.
    from trainables.data import load_dataset

    load_dataset("imagefolder", data_root=str(tiny_folder), cache_dir=str(tmp_path / "cache"))
    base = {"data_root": str(tiny_folder), "cache": str(tmp_path / "cache")}
    trial = {**gpu.SMOKE["trial"], "dataset": "imagefolder", "device": "cpu", "epochs": 2}
    trial["batch_size"] = 32
    r = gpu.run_pack(tmp_path / "pack", base, trial, n=2, deadline=float("inf"), full_epochs=15)
    assert r is not None and r["n"] == 2
    assert r["images_per_s"] > 0 and r["trials_per_hour"] > 0
    # trials/h is for full 15-epoch trials: start-up, warm-up, then 15 epochs at the steady pace
    full = r["setup_s"] + r["first_epoch_s"] + 14 * r["steady_epoch_s"]
    assert r["trials_per_hour"] == pytest.approx(2 * 3600 / full)
    assert [m["epoch"] for m in r["epochs"]] == [1, 2]
    assert r["peak_reserved_mib"] is None  # no GPU


def test_the_gpu_host_script_parses_and_refuses_an_unknown_phase(tmp_path):
    script = REPO / "bench" / "gpu_host.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    env = {"PATH": "/usr/bin:/bin", "STAGE": str(tmp_path / "s"), "OUT": str(tmp_path / "o")}
    done = subprocess.run(["bash", str(script), "nonsense", str(tmp_path)], env=env)
    assert done.returncode == 2
    # The search phase needs the bench phase's stage (or a carried site.tar.xz).
    done = subprocess.run(["bash", str(script), "search", str(tmp_path)], env=env)
    assert done.returncode == 3
