"""Bad input of every kind: one clear error line, exit code 2, nothing started or created."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from tests.helpers import DEMO
from tune.cli import main

GOOD = DEMO.read_text()


def write(tmp: Path, text: str | bytes, name: str = "search.yaml") -> str:
    if isinstance(text, bytes):
        (tmp / name).write_bytes(text)
    else:
        (tmp / name).write_text(text)
    return str(tmp / name)


def fifo(tmp: Path) -> str:
    os.mkfifo(tmp / "search.yaml")  # no writer: opening it would wait forever
    return str(tmp / "search.yaml")


LAUGHS = "".join(
    f"l{n}: &l{n} [{', '.join([f'*l{n - 1}' if n else 'x'] * 10)}]\n" for n in range(9)
)  # a "billion laughs": 10**9 values in nine lines


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
    "config-not-utf8": (lambda t: ["run", write(t, GOOD.encode() + b"# caf\xe9\n")], ["not UTF-8", "0xe9", "offset"]),
    "validate-not-utf8": (lambda t: ["validate", write(t, b"name: \xff\xfe\n")], ["not UTF-8", "offset 6"]),
    "config-over-1mib": (lambda t: ["run", write(t, GOOD + "#" * (1 << 20))], ["search.yaml", "1 MiB"]),
    "config-dev-zero": (lambda t: ["run", "/dev/zero"], ["/dev/zero", "character device", "regular file"]),
    "config-a-pipe": (lambda t: ["validate", fifo(t)], ["search.yaml", "a pipe"]),
    "config-a-folder": (lambda t: ["run", str(t)], ["a directory", "regular file"]),
    "repeated-key": (lambda t: ["run", write(t, GOOD + "epochs: 5000\n")], ["'epochs'", "given twice", "lines"]),
    "repeated-key-nested": (
        lambda t: ["run", write(t, GOOD.replace("search:\n", "search:\n  metric: val_loss\n", 1))],
        ["'search.metric'", "given twice"]),
    "repeated-key-in-set": (lambda t: ["run", str(DEMO), "--set", "search={seed: 1, seed: 2}"], ["--set", "'seed'", "twice"]),
    "yaml-billion-laughs": (lambda t: ["run", write(t, GOOD + LAUGHS)], ["expands to more than"]),
    "yaml-python-tag": (lambda t: ["run", write(t, GOOD + "x: !!python/object/apply:os.system [id]\n")], ["constructor", "tag"]),
    "yaml-too-deep": (lambda t: ["validate", write(t, "a: " + "[" * 5000 + "]" * 5000 + "\n")], ["too deep"]),
    "storage-nul-byte": (
        lambda t: ["run", write(t, GOOD.replace("storage_path: ", 'storage_path: "r\\0x"  # ', 1))], ["storage_path", "NUL"]),
    "data-root-nul-byte": (lambda t: ["run", str(DEMO), "--set", 'data_root="a\\0b"'], ["data_root", "NUL"]),
    "tracking-db-nul-byte": (lambda t: ["run", str(DEMO), "--set", 'mlflow.tracking_uri="sqlite:///m\\0.db"'], ["tracking_uri", "NUL"]),
    "storage-overlong-component": (lambda t: ["run", str(DEMO), "--set", f"storage_path={'s' * 300}"], ["storage_path", "300 bytes", "255"]),
    "cache-dir-overlong-path": (lambda t: ["run", str(DEMO), "--set", f"cache_dir={'/c' * 2100}"], ["cache_dir", "4096"]),
    "train-set-nul-byte": (lambda t: ["train", "--set", 'data_root="a\\0b"'], ["data_root", "NUL"]),
    "train-set-repeated-key": (lambda t: ["train", "--set", "width={a: 1, a: 2}"], ["--set", "'a'", "twice"]),
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


@pytest.mark.parametrize(
    "saved, words",
    [(b"name: caf\xe9\n", ["not UTF-8", "offset 9"]), (b"name: a\nname: b\n", ["'name'", "twice"])],
    ids=["not-utf8", "repeated-key"],
)
def test_resume_of_a_damaged_saved_config_is_one_line(saved, words, tmp_path, monkeypatch, capsys):
    # The saved copy is the one file a resume reads: hand-edited or damaged, it is bad input.
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "ray_results" / "s1"
    folder.mkdir(parents=True)
    (folder / "cnn_tune_config.yaml").write_bytes(saved)
    code = main(["resume", "s1"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "saved config of 's1' is unreadable" in errors[0], err
    for word in words:
        assert word in errors[0], (word, errors[0])
    assert sorted(p.name for p in folder.iterdir()) == ["cnn_tune_config.yaml"]  # nothing new
