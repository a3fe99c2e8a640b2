"""tune.checks: each pre-start check refuses with one line (exit 2 or 3) before anything exists."""

from __future__ import annotations

import socket

import pytest

from tests.tune.config_cases import space_with, with_changes
from tune.checks import (
    check_batch_size,
    check_local_resources,
    check_storage_path,
    probe_address,
    probe_tracking_store,
)
from tune.errors import BadInput, Unreachable
from tune.parse import parse_search_config


def config(tmp_path, **changes):
    return parse_search_config(with_changes(**changes), cwd=str(tmp_path))


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_storage_path_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInput, match="is not a writable folder"):
        check_storage_path(config(tmp_path, storage_path="file/results"))
    check_storage_path(config(tmp_path, storage_path="new/results"))  # creatable: fine
    check_storage_path(config(tmp_path, storage_path="s3://bucket/x"))  # Ray's business
    assert not (tmp_path / "new").exists()  # a check creates nothing


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
