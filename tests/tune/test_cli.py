"""The `cnn-tune` console script: help, version, validate, train, and refusals before Ray starts.

Run in-process through `tune.cli.main` (`cli`) where the process is not the point; the version
and the installed console script are checked as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import DEMO, cnn_tune, cnn_tune_here


def cli(*args: str, cwd: Path | None = None, env: dict | None = None):
    """`cnn-tune ARGS` in this process, in `cwd` (default: here, as a subprocess would be)."""
    return cnn_tune_here(*args, cwd=cwd or Path.cwd(), env=env)


def test_version():
    out = cnn_tune("--version")
    assert out.returncode == 0
    assert out.stdout.startswith("cnn-tune ")


@pytest.mark.parametrize(
    "command",
    [[], ["run"], ["validate"], ["train"], ["resume"], ["report"], ["ui"], ["stage-data"]],
)
def test_help_on_every_command(command):
    out = cli(*command, "--help")
    assert out.returncode == 0
    assert "usage: cnn-tune" in out.stdout
    if command:  # every subcommand takes -q/--quiet and -v/--verbose
        assert "-q, --quiet" in out.stdout and "-v, --verbose" in out.stdout


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "cnn-tune"
    assert script.exists(), "pip install -e . must create the cnn-tune console script"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert out.returncode == 0


def test_validate_prints_resolved_config_and_trial_count(tmp_path):
    out = cli("validate", str(DEMO), "--set", "epochs=2", "--set", "storage_path=rr", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    assert resolved["epochs"] == 2
    assert resolved["storage_path"] == str(tmp_path / "rr")
    assert resolved["space"]["lr"] == {"loguniform": [2e-3, 1e-2]}
    assert "8 trials" in out.stderr
    assert not (tmp_path / "rr").exists()  # validate starts nothing, writes nothing


@pytest.mark.parametrize(
    "args, words",
    [
        (["--set", "space.activation=[relu, swishy]"], ["space.activation", "swishy"]),
        (["--set", "space.lr={loguniform: [1e-2, 1e-4]}"], ["space.lr", "low < high"]),
        (["--set", "search.algorithm=bayes"], ["search.algorithm", "bayes"]),
        (["--set", "epochs"], ["epochs", "KEY=VALUE"]),
        (["--set", "nope.key=1"], ["nope"]),
    ],
)
def test_validate_rejects_bad_input_in_one_line(args, words):
    out = cli("validate", str(DEMO), *args)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for word in words:
        assert word in lines[0]


def test_unknown_flag_is_one_line_exit_2():
    out = cli("run", str(DEMO), "--fast")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1
    assert "--fast" in out.stderr


def test_run_refuses_existing_experiment_before_ray(tmp_path):
    (tmp_path / "ray_results" / "demo-mnist5k").mkdir(parents=True)
    out = cli("run", str(DEMO), cwd=tmp_path)
    assert out.returncode == 2
    assert "already exists" in out.stderr
    assert out.stdout == ""


def test_run_refuses_gpus_on_a_machine_without_them(tmp_path):
    out = cli("run", str(DEMO), "--set", "resources.gpus_per_trial=0.5", cwd=tmp_path)
    assert out.returncode == 2
    assert "gpus_per_trial" in out.stderr and "no GPU" in out.stderr
    assert not (tmp_path / "ray_results").exists()


def test_run_with_unreachable_cluster_exits_3(tmp_path):
    out = cli("run", str(DEMO), "--address", "127.0.0.1:9", cwd=tmp_path)
    assert out.returncode == 3
    assert "cannot reach the Ray cluster" in out.stderr
    assert out.stdout == ""


def test_train_json_is_the_only_stdout(tmp_path):
    out = cli(
        "train",
        "--epochs",
        "1",
        "--set",
        "max_train_images=512",
        "--set",
        "width=8",
        "--json",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    for key in ("val_acc", "val_loss", "test_acc", "epochs", "images_per_s", "seconds", "diverged"):
        assert key in result
    assert result["epochs"] == 1
    assert result["config"]["max_train_images"] == 512
    assert 0.0 <= result["val_acc"] <= 1.0
    assert "epoch 1/1" in out.stderr


def test_train_diverged_run_reports_it(tmp_path):
    out = cli(
        "train",
        "--epochs",
        "3",
        "--activation",
        "sigmoid",
        "--lr",
        "1.0",
        "--json",
        "--set",
        "max_train_images=256",
        "--set",
        "width=4",
        env={"CNN_TUNE_FAULT": "nan@1"},
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["diverged"] is True
    assert result["epochs"] == 1
    assert result["val_loss"] is None  # NaN is written as null: stdout stays strict JSON
    assert "diverged" in out.stderr


@pytest.mark.parametrize(
    "args, word",
    [
        (["--activation", "swishy"], "activation"),
        (["--lr", "0"], "lr"),
        (["--dataset", "cifar10"], "cifar10"),  # needs a data_root / download
        (["--set", "widht=3"], "widht"),
        (["--batch-size", "many"], "--batch-size"),
    ],
)
def test_train_bad_input_is_one_line_exit_2(args, word):
    out = cli("train", *args, "--json")
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert word in lines[0]


def test_stage_data_decodes_once_into_the_cache(tmp_path):
    cache = tmp_path / "cache"
    out = cli("stage-data", "mnist5k", "--cache-dir", str(cache))
    assert out.returncode == 0, out.stderr
    assert "staged mnist5k: 4000 train / 500 val / 500 test images" in out.stderr
    files = sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))
    assert len(files) == 2 and files[1] == files[0] + ".sha256"
    again = cli("stage-data", "mnist5k", "--cache-dir", str(cache))
    assert again.returncode == 0 and "cached mnist5k" not in again.stderr  # read, not rebuilt
    missing = cli("stage-data", "cifar10", "--data-root", str(tmp_path / "none"))
    assert missing.returncode == 2 and "--download" in missing.stderr
