"""tune.preflight: every check of a start runs once, before anything is made, and what it found
comes back as one typed plan."""

from __future__ import annotations

import dataclasses
import os
import socket

import pytest

from tests.helpers import DEMO
from tune.config.parse import load_search_config
from tune.disk_full import kept_state_dir
from tune.errors import BadInput, StateUnreadable, Unreachable
from tune.preflight import StartPlan, check_saved_state, preflight


def demo(tmp_path, **search):
    cfg = load_search_config(str(DEMO), cwd=str(tmp_path))
    cfg = dataclasses.replace(cfg, storage_path=str(tmp_path / "ray_results"))
    return dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, **search))


def test_a_start_that_passes_gets_its_plan_and_nothing_is_made(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = demo(tmp_path)
    plan = preflight(cfg, None, restore=False)
    assert isinstance(plan, StartPlan)
    assert plan.folder == os.path.join(cfg.storage_path, cfg.name)
    assert (plan.cfg, plan.address, plan.restore, plan.warm) == (cfg, None, False, None)
    assert [i["context"] for i in plan.inputs] == ["training", "validation", "test"]
    assert not os.path.exists(plan.folder)  # checked and staged; no experiment yet
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.restore = True  # type: ignore[misc]


def test_the_address_defaults_to_ray_address_and_is_probed(tmp_path, monkeypatch):
    with socket.socket() as head:  # something that listens, as a head's GCS port does
        head.bind(("127.0.0.1", 0))
        head.listen()
        address = f"127.0.0.1:{head.getsockname()[1]}"
        monkeypatch.setenv("RAY_ADDRESS", address)
        assert preflight(demo(tmp_path), None, restore=False).address == address
    with pytest.raises(Unreachable, match="127.0.0.1"):  # closed now
        preflight(demo(tmp_path), None, restore=False)


def test_an_unknown_earlier_search_is_exit_2_but_a_resume_goes_on_without_it(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = demo(tmp_path, warm_start=["never-ran"])
    with pytest.raises(BadInput, match="never-ran"):
        preflight(cfg, None, restore=False)
    assert preflight(cfg, None, restore=True).warm is None
    assert "resuming without it" in caplog.text


def test_an_unreachable_tracking_server_is_exit_3_last(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = demo(tmp_path)
    cfg = dataclasses.replace(
        cfg, mlflow=dataclasses.replace(cfg.mlflow, tracking_uri=f"http://127.0.0.1:{port}")
    )
    with pytest.raises(Unreachable, match="MLflow tracking server"):
        preflight(cfg, None, restore=False)


def test_a_resume_reads_rays_saved_state_before_anything_is_touched(tmp_path, monkeypatch):
    cfg = demo(tmp_path)
    folder = tmp_path / "ray_results" / cfg.name
    check_saved_state(cfg)  # no experiment yet: Ray starts afresh
    folder.mkdir(parents=True)
    state = folder / "experiment_state-2026-01-01_00-00-00.json"
    state.write_text('{"trial_data": [')  # cut short
    with pytest.raises(StateUnreadable, match=f"cannot read Ray's experiment state {state}: "):
        check_saved_state(cfg)
    # Cut by a full disk: the copy kept aside is the one the resume puts back.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    os.makedirs(kept_state_dir(str(folder)))
    check_saved_state(cfg)
