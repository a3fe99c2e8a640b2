"""tune.machine: the CPUs this process may use, whatever the host has."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import DEMO, REPO
from tune.cli import main
from tune.machine import cgroup_cpu_quota, usable_cpus


def test_usable_cpus_follow_the_affinity_mask():
    out = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c",
         "from tune.machine import usable_cpus; print(usable_cpus())"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "1"
    assert 1 <= usable_cpus()


@pytest.mark.parametrize(
    "text, cpus", [("150000 100000", 2), ("100000 100000", 1), ("max 100000", None), ("", None)]
)
def test_cgroup_quota(tmp_path, text, cpus):
    path = tmp_path / "cpu.max"
    path.write_text(text)
    assert cgroup_cpu_quota(str(path)) == cpus
    assert cgroup_cpu_quota(str(tmp_path / "missing")) is None


@pytest.fixture
def one_cpu():
    """This process may use one CPU (as `taskset -c 0` would make it), and all again after."""
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    yield
    os.sched_setaffinity(0, allowed)


def test_a_trial_larger_than_the_allowed_cpus_is_refused_before_anything_starts(
    tmp_path, monkeypatch, capsys, one_cpu
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # the local Ray this process would start
    assert main(["run", str(DEMO), "--set", "resources.cpus_per_trial=2"]) == 2
    assert "cpus_per_trial is 2 but the local Ray has 1 CPU(s)" in capsys.readouterr().err
    assert not (tmp_path / "ray_results").exists() and not (tmp_path / "mlruns.db").exists()


def test_local_cpus_cannot_exceed_what_this_process_may_use(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(DEMO), "--set", "resources.local_cpus=4096"]) == 2
    assert "resources.local_cpus is 4096" in capsys.readouterr().err
