"""Every shipped search config validates as written."""

from pathlib import Path

import pytest

from tune.config.parse import load_search_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_configs_are_shipped():
    assert {p.name for p in CONFIGS} >= {
        "demo.yaml",
        "cifar10.yaml",
        "cifar100.yaml",
        "imagefolder.yaml",
    }


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates(path, tmp_path):
    cfg = load_search_config(str(path), cwd=str(tmp_path))
    assert cfg.trial_count() >= 8
    assert set(cfg.space) >= {"activation", "augment", "batch_size", "lr"}


def test_gpu_configs_pack_trials_on_a_gpu():
    for name in ("cifar10.yaml", "cifar100.yaml"):
        cfg = load_search_config(str(CONFIGS[0].parent / name))
        assert 0 < cfg.resources.gpus_per_trial < 1
        assert cfg.search.scheduler == "asha"
