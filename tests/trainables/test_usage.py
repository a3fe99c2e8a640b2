import time

import torch

from trainables.usage import MIB, UsageMeter, resident_bytes


def test_resident_set_is_read_from_proc():
    rss = resident_bytes()
    assert rss is not None and rss > 10 * MIB  # a Python process with torch loaded


def test_peak_is_sampled_during_the_trial_not_the_process_lifetime():
    with UsageMeter(torch.device("cpu")) as meter:
        block = torch.ones(64 * MIB, dtype=torch.uint8)  # 64 MiB, touched
        time.sleep(1.2)  # two samples
        held = meter.metrics()["system/peak_rss_mib"]
        del block
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
