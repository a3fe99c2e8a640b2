"""Bad input of every kind: one clear error line, exit code 2, nothing started or created."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from tests.helpers import DEMO
from tune.cli import main

GOOD = DEMO.read_text()


def write(tmp: Path, text: str, name: str = "search.yaml") -> str:
    (tmp / name).write_text(text)
    return str(tmp / name)


def corrupt_cifar(tmp: Path) -> str:
    folder = tmp / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                 "test_batch", "batches.meta"):  # fmt: skip
        (folder / name).write_bytes(b"not a pickle" + pickle.dumps({"x": 1}))
    return str(tmp / "cifar")


def image_folder(tmp: Path, kind: str) -> str:
    root = tmp / "images"
    (root / "train").mkdir(parents=True)
    if kind == "non-image":
        (root / "train" / "cat").mkdir()
        (root / "train" / "cat" / "a.jpg").write_text("this is text, not a JPEG")
    return str(root)


# id -> (argv builder, words the one error line must contain)
CASES = {
    "malformed-yaml": (lambda t: ["run", write(t, "name: [unclosed\n")], ["malformed YAML"]),
    "missing-file": (lambda t: ["run", str(t / "nope.yaml")], ["nope.yaml"]),
    "unknown-key": (lambda t: ["run", write(t, GOOD + "colour: blue\n")], ["colour"]),
    "unknown-activation": (lambda t: ["run", str(DEMO), "--set", "space.activation=[swish2]"], ["swish2", "relu"]),
    "unknown-augment": (lambda t: ["run", str(DEMO), "--set", "space.augment=[mixup]"], ["mixup", "flip-crop"]),
    "unknown-dataset": (lambda t: ["run", str(DEMO), "--set", "dataset=imagenet"], ["imagenet", "cifar10"]),
    "unknown-algorithm": (lambda t: ["run", str(DEMO), "--set", "search.algorithm=bayes"], ["bayes", "optuna"]),
    "unknown-scheduler": (lambda t: ["run", str(DEMO), "--set", "search.scheduler=hyperband"], ["hyperband", "asha"]),
    "lr-zero": (lambda t: ["run", str(DEMO), "--set", "space.lr=[0.0]"], ["lr", "> 0"]),
    "lr-inverted": (lambda t: ["run", str(DEMO), "--set", "space.lr={loguniform: [1e-2, 1e-4]}"], ["space.lr", "low < high"]),
    "batch-size-zero": (lambda t: ["run", str(DEMO), "--set", "space.batch_size=[0]"], ["batch_size", ">= 2"]),
    "batch-size-over-train-set": (
        lambda t: ["run", str(DEMO), "--set", "trial.max_train_images=50"], ["batch_size 64", "50 training images"]),
    "epochs-zero": (lambda t: ["run", str(DEMO), "--set", "epochs=0"], ["epochs"]),
    "num-samples-zero": (lambda t: ["run", str(DEMO), "--set", "search.num_samples=0"], ["num_samples"]),
    "gpus-unavailable": (lambda t: ["run", str(DEMO), "--set", "resources.gpus_per_trial=0.5"], ["gpus_per_trial", "no GPU"]),
    "optuna-with-pbt": (
        lambda t: ["run", str(DEMO), "--set", "search.algorithm=optuna", "--set", "search.scheduler=pbt"], ["optuna", "pbt"]),
    "grid-over-range": (lambda t: ["run", str(DEMO), "--set", "search.algorithm=grid"], ["grid", "space.lr"]),
    "data-root-missing": (lambda t: ["run", str(DEMO), "--set", "dataset=cifar10"], ["data_root"]),
    "data-root-empty": (
        lambda t: ["run", str(DEMO), "--set", "dataset=cifar10", "--set", f"data_root={t / 'none'}"], ["cifar10", "not found"]),
    "corrupt-dataset-files": (
        lambda t: ["run", str(DEMO), "--set", "dataset=cifar10", "--set", f"data_root={corrupt_cifar(t)}"], ["cifar10"]),
    "imagefolder-no-classes": (
        lambda t: ["run", str(DEMO), "--set", "dataset=imagefolder", "--set", f"data_root={image_folder(t, 'empty')}"], ["class"]),
    "imagefolder-non-image": (
        lambda t: ["run", str(DEMO), "--set", "dataset=imagefolder", "--set", f"data_root={image_folder(t, 'non-image')}"],
        ["a.jpg"]),
    "storage-under-a-file": (
        lambda t: ["run", str(DEMO), "--set", f"storage_path={write(t, 'x', 'plain-file')}/results"], ["storage_path", "plain-file"]),
    "bad-set-syntax": (lambda t: ["run", str(DEMO), "--set", "epochs"], ["epochs", "KEY=VALUE"]),
    "unknown-set-path": (lambda t: ["run", str(DEMO), "--set", "search.speed=fast"], ["search.speed"]),
    "tracking-uri-scheme": (lambda t: ["run", str(DEMO), "--set", "mlflow.tracking_uri=ftp://host/x"], ["ftp", "scheme"]),
    "name-traversal": (lambda t: ["run", str(DEMO), "--name", "../escape"], ["name", "../escape"]),
    "stop-traversal": (lambda t: ["stop", "../other"], ["../other", "plain name"]),
    "delete-traversal": (lambda t: ["delete", "../other", "--yes", "--keep-runs"], ["../other", "plain name"]),
    "delete-absolute": (lambda t: ["delete", "/etc", "--yes", "--keep-runs"], ["/etc", "plain name"]),
    "report-traversal": (lambda t: ["report", "a/../b"], ["search name", "a/../b"]),
    "report-empty-name": (lambda t: ["report", ""], ["search name", "plain name"]),
    "name-overlong": (lambda t: ["run", str(DEMO), "--name", "n" * 101], ["name", "1-100"]),
    "warm-start-traversal": (lambda t: ["run", str(DEMO), "--set", "search.warm_start=[../x]"], ["search.warm_start", "../x"]),
    "storage-under-proc": (lambda t: ["run", str(DEMO), "--set", "storage_path=/proc/nope/results"], ["storage_path", "/proc/nope"]),
    "sqlite-folder-uncreatable": (
        lambda t: ["run", str(DEMO), "--set", "mlflow.tracking_uri=sqlite:////proc/nope/m.db"], ["mlflow.tracking_uri", "/proc/nope"]),
    "cache-dir-under-a-file": (
        lambda t: ["run", str(DEMO), "--set", f"cache_dir={write(t, 'x', 'plain-file')}/cache"], ["cache_dir", "plain-file"]),
    "resume-unknown": (lambda t: ["resume", "never-ran"], ["never-ran"]),
    "resume-traversal": (lambda t: ["resume", "../../etc"], ["../../etc"]),
    "stop-target-not-a-number": (lambda t: ["run", str(DEMO), "--set", "search.stop.target=high"], ["search.stop.target", "high"]),
    "stop-plateau-patience-zero": (
        lambda t: ["run", str(DEMO), "--set", "search.stop.plateau={patience: 0}"], ["search.stop.plateau.patience", ">= 1"]),
    "notify-webhook-not-http": (lambda t: ["run", str(DEMO), "--set", "notify.webhook=file:///tmp/x"], ["notify.webhook", "http"]),
    "notify-unknown-end": (lambda t: ["run", str(DEMO), "--set", "notify.on=[done]"], ["notify.on", "done"]),
    "warm-start-unknown": (lambda t: ["run", str(DEMO), "--set", "search.warm_start=[sunday]"], ["search.warm_start", "sunday"]),
    "warm-start-itself": (lambda t: ["run", str(DEMO), "--set", "search.warm_start=[demo-mnist5k]"], ["search.warm_start", "itself"]),
    "report-html-no-folder": (lambda t: ["report", "s1", "--html", str(t / "no" / "r.html")], ["--html", "does not exist"]),
    "report-html-is-folder": (lambda t: ["report", "s1", "--html", str(t)], ["--html", "is a folder"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    build, words = CASES[case]
    argv = build(tmp_path)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1, err
    for word in words:
        assert word in errors[0], (word, errors[0])
    # Nothing started: no experiment folder, no Ray session of ours, no MLflow store.
    assert not (tmp_path / "ray_results").exists()
    assert not (tmp_path / "mlruns.db").exists()


def test_at_least_twenty_cases():
    assert len(CASES) >= 20
