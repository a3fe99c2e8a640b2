"""tune.disk_full: a full disk mid-search stops the whole search like SIGTERM (exit 130, one
line naming the filesystem), and a plain resume after space is freed finishes it."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.tune.test_cli import DEMO, cnn_tune
from tune import disk_full
from tune.disk_full import FullDiskWatch, describe_full, is_disk_full, mount_point


def tmpfs(folder: Path, size: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    return folder


@pytest.fixture
def small_disk(tmp_path):
    folder = tmpfs(tmp_path / "small", "64k")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def fill(folder: Path) -> None:
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 4096)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    assert os.statvfs(folder).f_bavail == 0


class FakeRayTaskError(Exception):
    """What Ray raises on the driver for a trial's failure: the trial's exception in `cause`."""

    def __init__(self, cause):
        super().__init__("ray::ImplicitFunc.train() failed")
        self.cause = cause


@pytest.mark.parametrize(
    "exc, full",
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (OSError("[Errno 28] Error writing bytes to file. Detail: [errno 28] ..."), True),
        (FakeRayTaskError(OSError(errno.ENOSPC, "x")), True),
        ("Failure # 1\nOSError: [Errno 28] No space left on device\n", True),
        (OSError(errno.EACCES, "Permission denied"), False),
        (ValueError("28 trials"), False),
        (None, False),
    ],
)
def test_a_full_disk_is_known_by_its_errno_or_its_text(exc, full):
    assert is_disk_full(exc) is full


def test_a_full_disk_is_found_through_causes_and_contexts():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise EOFError("Ran out of input") from None
    except EOFError as exc:
        assert not is_disk_full(exc)  # `from None` hides the context on purpose
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("saving failed") from inner
    except RuntimeError as exc:
        assert is_disk_full(exc)


def test_the_line_names_the_filesystem_and_the_path(small_disk):
    fill(small_disk)
    assert mount_point(str(small_disk / "a" / "b")) == str(small_disk)
    text = describe_full(str(small_disk / "exp"))
    assert text.startswith(f"the filesystem at {small_disk} (0 B free of 64.0 KiB) is full")
    assert text.endswith(f"writing under {small_disk / 'exp'}")


def test_a_watch_stops_only_while_the_fit_runs(monkeypatch, tmp_path):
    sent = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append(sig))
    watch = FullDiskWatch("demo", str(tmp_path))
    assert not watch.notice(OSError(errno.EACCES, "Permission denied"))
    assert watch.notice(OSError(errno.ENOSPC, "No space left on device")) and sent == []
    watch.armed = True
    watch.notice(OSError(errno.ENOSPC, "x"))
    watch.notice(OSError(errno.ENOSPC, "x"))
    assert sent == [signal.SIGINT]  # once: a second SIGINT would skip Ray's state save
    error = watch.error()
    assert error.exit_code == 130 and "`cnn-tune resume demo`" in str(error)


def test_the_run_map_on_a_full_disk_stays_whole(small_disk):
    from tune.run_map import RunMap

    path = str(small_disk / "cnn_tune_mlflow.json")
    RunMap("sqlite:///x.db", "1", "parent").save(path)
    fill(small_disk)
    big = RunMap("sqlite:///x.db", "1", "parent", aliases={str(i): "r" * 50 for i in range(5000)})
    with pytest.raises(OSError):
        big.save(path)
    assert RunMap.load(path).parent_run_id == "parent"  # the old map, not a cut one
    assert not os.path.exists(path + ".tmp")
    assert disk_full.notice(OSError(errno.ENOSPC, "x"))  # no search driven: only told


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("max_failures", [0, 1])
def test_a_search_that_fills_its_disk_stops_then_resumes_to_the_end(tmp_path, max_failures):
    storage = tmpfs(tmp_path / "rr", "400k")  # room for the first checkpoints only
    try:
        args = ["--set", "epochs=3", "--set", "search.num_samples=4", "--set", "trial.width=8",
                "--set", "trial.max_train_images=400", "--set", f"storage_path={storage}",
                "--set", f"search.max_failures={max_failures}"]  # fmt: skip
        out = cnn_tune("run", str(DEMO), *args, cwd=tmp_path)
        assert out.returncode == 130, out.stderr[-3000:]
        assert "Traceback" not in out.stderr, out.stderr[-3000:]
        errors = [line for line in out.stderr.splitlines() if line.startswith("cnn-tune: error")]
        assert len(errors) == 1, out.stderr[-3000:]
        assert f"the filesystem at {storage} (0 B free of 400.0 KiB) is full" in errors[0]
        assert f"writing under {storage}/demo-mnist5k" in errors[0]
        client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns.db'}")
        ids = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(ids)
        assert runs and "RUNNING" not in {r.info.status for r in runs}
        logged = sum(len(client.get_metric_history(r.info.run_id, "val_acc")) for r in runs)
        assert logged >= 1  # what was logged before the disk filled stays

        subprocess.run(["mount", "-o", "remount,size=64m", str(storage)], check=True)
        out = cnn_tune("resume", "demo-mnist5k", "--storage-path", str(storage), cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
        runs = client.search_runs(ids)
        assert {r.info.status for r in runs} == {"FINISHED"} and len(runs) == 5
        for run in runs:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")]
            assert steps == sorted(set(steps)), (run.info.run_name, steps)  # none twice
    finally:
        subprocess.run(["umount", str(storage)], check=True)
