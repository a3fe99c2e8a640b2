"""tune.checks: each pre-start check refuses with one line (exit 2 or 3) before anything exists."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tests.config_cases import space_with, with_changes
from tune.checks import (
    check_batch_size,
    check_folder,
    check_local_resources,
    check_paths,
    check_sqlite_file,
    probe_address,
    probe_tracking_store,
)
from tune.config.parse import parse_search_config
from tune.errors import BadInput, Unreachable


def config(tmp_path, **changes):
    return parse_search_config(with_changes(**changes), cwd=str(tmp_path))


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def read_only(tmp_path):
    """A folder on a read-only filesystem (a tmpfs mounted `ro`): root ignores file modes, so
    only a read-only mount makes a place tests cannot write, as on a shared cluster."""
    folder = tmp_path / "ro"
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a read-only tmpfs is not permitted here: {done.stderr.strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_storage_path_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInput, match="cannot be created: .*file is not a folder"):
        check_paths(config(tmp_path, storage_path="file/results"))
    with pytest.raises(BadInput, match="storage_path .*file is not a folder"):
        check_paths(config(tmp_path, storage_path="file"))
    check_paths(config(tmp_path, storage_path="new/results"))  # creatable: fine
    check_paths(config(tmp_path, storage_path="s3://bucket/x"))  # Ray's business
    assert not (tmp_path / "new").exists()  # a check creates nothing


def test_a_folder_under_proc_is_one_line_not_a_traceback(tmp_path):
    with pytest.raises(BadInput, match=r"^storage_path /proc/nope/results cannot be created"):
        check_paths(config(tmp_path, storage_path="/proc/nope/results"))


@pytest.mark.parametrize("key", ["storage_path", "cache_dir"])
def test_a_folder_on_a_read_only_filesystem_is_refused(tmp_path, read_only, key):
    with pytest.raises(BadInput, match=rf"^{key} .*ro is not writable \(Read-only file system\)"):
        check_paths(config(tmp_path, **{key: str(read_only)}))
    with pytest.raises(BadInput, match=rf"^{key} .*ro/sub cannot be created in .*ro"):
        check_paths(config(tmp_path, **{key: str(read_only / "sub")}))


def test_data_root_is_read_only_unless_it_downloads(tmp_path, read_only):
    check_paths(config(tmp_path, data_root=str(read_only)))  # a shared read-only copy: fine
    check_paths(config(tmp_path, data_root=str(tmp_path / "absent")))  # the loader says what
    with pytest.raises(BadInput, match=r"^data_root .*ro is not writable"):
        check_paths(config(tmp_path, data_root=str(read_only), trial={"download": True}))
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInput, match=r"^data_root .*file is not a folder"):
        check_paths(config(tmp_path, data_root=str(tmp_path / "file")))


def test_the_sqlite_file_of_the_tracking_uri_is_checked(tmp_path, read_only):
    def uri(path):
        return {"tracking_uri": f"sqlite:///{path}"}

    check_paths(config(tmp_path, mlflow=uri(tmp_path / "new" / "mlruns.db")))
    with pytest.raises(BadInput, match=r"^mlflow.tracking_uri .*ro \(the folder of m.db\)"):
        check_paths(config(tmp_path, mlflow=uri(read_only / "m.db")))
    (tmp_path / "folder.db").mkdir()
    with pytest.raises(BadInput, match="is a folder, not a SQLite database file"):
        check_paths(config(tmp_path, mlflow=uri(tmp_path / "folder.db")))
    check_sqlite_file("mlflow.tracking_uri", "http://127.0.0.1:1")  # a server: probed, not here


def test_a_probe_leaves_nothing_behind(tmp_path):
    check_folder("storage_path", str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_every_batch_size_must_fit_the_training_set(tmp_path):
    cfg = config(tmp_path, space=space_with(batch_size=[64, 512]))
    check_batch_size(cfg, 1000)
    with pytest.raises(BadInput, match="batch_size 512 is larger than the 500 training images"):
        check_batch_size(cfg, 500)
    capped = config(tmp_path, space=space_with(batch_size=[64]), trial={"max_train_images": 32})
    with pytest.raises(BadInput, match="batch_size 64 is larger than the 32"):
        check_batch_size(capped, 1000)
    fixed = config(tmp_path, space={"lr": [0.1, 0.2]}, trial={"batch_size": 256})
    with pytest.raises(BadInput, match="batch_size 256"):
        check_batch_size(fixed, 100)


def test_a_trial_must_fit_this_machine(tmp_path):
    with pytest.raises(BadInput, match="this machine has no GPU"):
        check_local_resources(config(tmp_path, resources={"gpus_per_trial": 0.5}))
    with pytest.raises(BadInput, match="cpus_per_trial is 4096"):
        check_local_resources(config(tmp_path, resources={"cpus_per_trial": 4096}))
    check_local_resources(config(tmp_path))


def test_cluster_address_form_and_reachability():
    with pytest.raises(BadInput, match="is not HOST:PORT"):
        probe_address("no-port")
    with pytest.raises(Unreachable, match="cannot reach the Ray cluster"):
        probe_address(f"127.0.0.1:{closed_port()}")
    probe_address("auto")  # left to Ray


def test_tracking_server_must_answer():
    with pytest.raises(Unreachable, match="cannot reach the MLflow tracking server"):
        probe_tracking_store(f"http://127.0.0.1:{closed_port()}")
    probe_tracking_store("sqlite:////nowhere/mlruns.db")  # opened in process, nothing to probe


def test_report_html_on_a_read_only_filesystem_is_refused(tmp_path, read_only):
    from tune.commands.store import check_html_path

    with pytest.raises(BadInput, match=r"^--html .*ro \(the folder of r.html\) is not writable"):
        check_html_path(str(read_only / "r.html"))
    check_html_path(str(tmp_path / "r.html"))
