"""What this process may use on this machine: CPUs (affinity and cgroup quota) and GPUs."""

from __future__ import annotations

import math
import os

CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"  # cgroup v2: "<quota> <period>" or "max <period>"


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask (taskset, Slurm, cpusets), capped by a
    cgroup CPU quota (Kubernetes limits, docker --cpus), rounded up; at least 1.

    `os.cpu_count()` sees the whole host: a job on a 64-core node limited to 4 would start
    16 times too many trials.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, quota)
    return max(1, cpus)


def cgroup_cpu_quota(path: str = CGROUP_CPU_MAX) -> int | None:
    """The cgroup v2 CPU limit in whole CPUs (rounded up), or None when there is none."""
    try:
        with open(path) as f:
            quota, period = f.read().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def usable_gpus() -> int:
    """GPUs torch can see from this process (CUDA_VISIBLE_DEVICES applied)."""
    import torch

    return torch.cuda.device_count()
