"""tune.driver: a start that fails before its first trial leaves the storage as it found it,
so the same command, corrected, runs; a held lock (exit 4) removes nothing at all."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.helpers import DEMO
from tune.cli import main
from tune.lock import LOCK_FILE, OWNER_FILE, experiment_lock
from tune.paths import CONFIG_FILE

TINY = ["--set", "epochs=1", "--set", "search.num_samples=1", "--set", "trial.width=8",
        "--set", "trial.max_train_images=200"]  # fmt: skip
NAME = "demo-mnist5k"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_server() -> str:
    return f"http://127.0.0.1:{closed_port()}"


def tree(folder: Path) -> dict[str, str]:
    """Every file below `folder` with its content: what a start must leave as it was."""
    return {
        str(p.relative_to(folder)): p.read_text(errors="replace")
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def old_experiment(storage: Path) -> Path:
    """An earlier search's folder: saved config, run map and a trial's result."""
    folder = storage / NAME
    (folder / "trial_0").mkdir(parents=True)
    (folder / CONFIG_FILE).write_text(DEMO.read_text())
    (folder / "run_map.json").write_text('{"old": true}')
    (folder / "trial_0" / "result.json").write_text('{"val_acc": 0.5}\n')
    return folder


def garbage_store(tmp_path: Path) -> str:
    db = tmp_path / "garbage.db"
    db.write_bytes(b"this is not a SQLite database" * 100)
    return f"mlflow.tracking_uri=sqlite:///{db}"


@pytest.mark.parametrize(
    "case, args, code",
    [
        ("unreachable-server", lambda t: ["--set", f"mlflow.tracking_uri={closed_server()}"], 3),
        ("bad-data", lambda t: ["--set", "dataset=cifar10", "--set", f"data_root={t / 'none'}"], 2),
        ("resources", lambda t: ["--set", "resources.cpus_per_trial=4096"], 2),
        ("unusable-cache", lambda t: ["--set", f"cache_dir={t / 'ro.txt'}"], 2),
    ],
)  # fmt: skip
def test_a_start_that_fails_its_checks_creates_nothing(tmp_path, monkeypatch, case, args, code):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ro.txt").write_text("a file, not a folder")
    assert main(["run", str(DEMO), *args(tmp_path)]) == code
    assert not (tmp_path / "ray_results").exists()
    assert not (tmp_path / "mlruns.db").exists()


def test_a_held_lock_is_exit_4_and_removes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = old_experiment(tmp_path / "ray_results")
    with experiment_lock(str(folder), NAME):
        before = tree(folder)
        for extra in ([], ["--overwrite"], ["--resume-if-exists"]):
            assert main(["run", str(DEMO), *extra]) == 4
            assert tree(folder) == before
    assert "already being driven" in capsys.readouterr().err


def test_a_lock_taken_between_check_and_start_removes_nothing(tmp_path, monkeypatch):
    """The race `run_search`'s own check cannot see: `drive` meets the lock itself."""
    from tune.config.parse import load_search_config
    from tune.driver import drive
    from tune.errors import Locked

    monkeypatch.chdir(tmp_path)
    cfg = load_search_config(str(DEMO), cwd=str(tmp_path))
    folder = Path(cfg.storage_path) / cfg.name
    with experiment_lock(str(folder), NAME):
        before = tree(folder)
        with pytest.raises(Locked):
            drive(cfg, None, restore=False)
        assert tree(folder) == before and sorted(os.listdir(folder)) == [LOCK_FILE, OWNER_FILE]


@pytest.mark.ray
@pytest.mark.slow
def test_an_unusable_store_leaves_nothing_and_keeps_an_overwritten_search(
    tmp_path, monkeypatch, capsys, ray_address
):
    """A store that fails once the lock is held (a garbage SQLite file): the fresh start is
    taken back whole, `--overwrite` keeps the old search, and the corrected command runs."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_ADDRESS", ray_address)  # the session's Ray, as `--address` would
    storage = tmp_path / "ray_results"
    old = old_experiment(storage)
    before = tree(old)

    code = main(["run", str(DEMO), *TINY, "--overwrite", "--set", garbage_store(tmp_path)])
    assert code in (2, 3)
    err = capsys.readouterr().err
    assert "garbage.db" in err and "Traceback" not in err
    assert tree(old) == before  # the old search, whole: not replaced by a start that failed
    assert sorted(os.listdir(old)) == sorted([CONFIG_FILE, "run_map.json", "trial_0"])

    fresh = ["run", str(DEMO), *TINY, "--name", "fresh"]
    assert main([*fresh, "--set", garbage_store(tmp_path)]) in (2, 3)
    assert sorted(os.listdir(storage)) == [NAME]  # nothing of `fresh`: no folder, no lock
    assert main(["resume", "fresh"]) == 2  # no experiment to resume with the bad URI
    capsys.readouterr()

    assert main(fresh) == 0  # the same command, corrected: not refused as "already exists"
    # Logging the model went through MLflow's fluent API, which sets MLFLOW_TRACKING_URI: a
    # later search in this process must not inherit this one's store.
    assert "MLFLOW_TRACKING_URI" not in os.environ
    runs = MlflowClient(f"sqlite:///{tmp_path / 'mlruns.db'}").search_runs(
        [
            e.experiment_id
            for e in MlflowClient(f"sqlite:///{tmp_path / 'mlruns.db'}").search_experiments()
        ]
    )
    assert {r.info.status for r in runs} == {"FINISHED"}


@pytest.mark.ray
@pytest.mark.slow  # a whole search (17 s): the fast lane keeps to its two minutes
def test_a_stop_during_the_end_of_a_search_waits_for_it(tmp_path, ray_address, monkeypatch):
    """SIGTERM (what `cnn-tune stop` sends) arriving while the end is logged: the end finishes,
    the runs are closed, exit 0, and the driver says what happened."""
    import signal

    import tune.driver
    from tests.helpers import cnn_tune_here, grid_args, mlflow_runs

    real_end = tune.driver.end_search

    def end_search(*args, **kwargs):
        handler = signal.getsignal(signal.SIGTERM)
        # Without a handler of the driver's own, SIGTERM's default or Ray's leftover one would
        # end this whole test session: fail here instead.
        assert "sigterm_waits_for_the_end" in getattr(handler, "__qualname__", ""), handler
        os.kill(os.getpid(), signal.SIGTERM)  # the stop arrives as the end begins
        return real_end(*args, **kwargs)

    monkeypatch.setattr(tune.driver, "end_search", end_search)
    out = cnn_tune_here("run", str(DEMO), *grid_args("[relu]", epochs=1, images=200),
                        cwd=tmp_path, address=ray_address)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "a stop (SIGTERM) came while the end of the search was logged" in out.stderr
    _, parents, children = mlflow_runs(tmp_path)
    assert [r.info.status for r in parents + children] == ["FINISHED", "FINISHED"]
