import mmap
import time

import torch

from trainables.resource_meter import MIB, UsageMeter, resident_bytes


def test_resident_set_is_read_from_proc():
    rss = resident_bytes()
    assert rss is not None and rss > 10 * MIB  # a Python process with torch loaded


def touch_anonymous_block(size: int) -> mmap.mmap:
    """An anonymous mapping with every page written: resident until closed, whatever the allocator.

    A torch tensor is not used: whether freeing it returns the pages to the OS depends on
    glibc's mmap threshold and on what the process did before (it did not, once, in the full suite).
    """
    block = mmap.mmap(-1, size)
    for offset in range(0, size, mmap.PAGESIZE):
        block[offset] = 1
    return block


def test_peak_is_sampled_during_the_trial_not_the_process_lifetime():
    with UsageMeter(torch.device("cpu")) as meter:
        block = touch_anonymous_block(64 * MIB)
        time.sleep(1.2)  # two samples
        held = meter.metrics()["system/peak_rss_mib"]
        block.close()  # munmap: the pages leave the resident set now
    assert held >= resident_bytes() / MIB + 32  # the peak outlives the allocation
    # A new trial in the same (reused) process starts from today's resident set, not the peak.
    with UsageMeter(torch.device("cpu")) as fresh:
        assert fresh.metrics()["system/peak_rss_mib"] < held - 32


def test_metrics_name_the_visible_gpus_and_skip_gpu_figures_on_cpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    with UsageMeter(torch.device("cpu")) as meter:
        metrics = meter.metrics()
    assert metrics["cuda_visible_devices"] == "1"
    assert not any(k.startswith("system/gpu") for k in metrics)
