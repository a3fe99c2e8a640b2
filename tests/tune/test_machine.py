"""tune.machine: the CPUs this process may use, whatever the host has."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import DEMO, REPO, cnn_tune
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


def test_a_trial_larger_than_the_allowed_cpus_is_refused_before_anything_starts(tmp_path):
    out = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-m", "tune.cli", "run", str(DEMO),
         "--set", "resources.cpus_per_trial=2"],
        cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "cpus_per_trial is 2 but the local Ray has 1 CPU(s)" in out.stderr
    assert not (tmp_path / "ray_results").exists() and not (tmp_path / "mlruns.db").exists()


def test_local_cpus_cannot_exceed_what_this_process_may_use(tmp_path):
    out = cnn_tune("run", str(DEMO), "--set", "resources.local_cpus=4096", cwd=tmp_path)
    assert out.returncode == 2 and "resources.local_cpus is 4096" in out.stderr
