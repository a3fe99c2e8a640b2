"""What one trial used, as MLflow `system/` metrics: peak resident memory and peak GPU memory.

Reused workers (`reuse_actors`) run many trials in one process, so the process-lifetime
maximum (`ru_maxrss`) would carry one trial's peak into the next: the resident set is sampled
by a thread instead, from the trial's start. GPU figures come from torch's caching allocator,
reset at the trial's start; they are per process, so packed trials each see their own share.
GPU utilisation comes from NVML where `pynvml` is installed; it is the whole device's, so with
packed trials (`gpus_per_trial` < 1) it covers all the trials sharing it.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import torch

SAMPLE_EVERY_S = 0.5  # resident-set samples; a peak shorter than this can be missed
MIB = 2**20


def resident_bytes() -> int | None:
    """This process's resident set now (Linux /proc), None where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def gpu_utilization() -> float | None:
    """The current device's utilisation (%) from NVML; None without NVML (pynvml) or a GPU."""
    try:
        return float(torch.cuda.utilization())
    except Exception:  # no pynvml, no driver, no device: the figure is optional
        return None


class UsageMeter:
    """Peak memory of the current trial: start it when the trial starts, read it per epoch."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.cuda = device is not None and device.type == "cuda"
        self.peak_rss = resident_bytes() or 0
        self.gpu_busy: list[float] = []  # NVML utilisation samples (%), where NVML is present
        self._nvml = self.cuda and gpu_utilization() is not None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="usage-meter", daemon=True)

    def __enter__(self) -> UsageMeter:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * SAMPLE_EVERY_S)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self.peak_rss = max(self.peak_rss, resident_bytes() or 0)
            busy = gpu_utilization() if self._nvml else None
            if busy is not None:
                self.gpu_busy.append(busy)

    def metrics(self) -> dict[str, Any]:
        """`system/...` metrics so far (MiB), plus the GPUs this process was given."""
        self.peak_rss = max(self.peak_rss, resident_bytes() or 0)
        out: dict[str, Any] = {"system/peak_rss_mib": self.peak_rss / MIB}
        if self.cuda:
            out["system/gpu_max_allocated_mib"] = torch.cuda.max_memory_allocated() / MIB
            out["system/gpu_max_reserved_mib"] = torch.cuda.max_memory_reserved() / MIB
        if self.gpu_busy:  # the whole device's, packed trials included
            out["system/gpu_utilization_pct"] = sum(self.gpu_busy) / len(self.gpu_busy)
        # Ray sets it per trial from gpus_per_trial; packed trials show the same device.
        out["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        return out
