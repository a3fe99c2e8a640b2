"""Every shipped search config validates as written."""

from pathlib import Path

import pytest

from tune.config.parse import load_search_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_configs_are_shipped():
    assert {p.name for p in CONFIGS} >= {
        "demo.yaml",
        "cifar10.yaml",
        "cifar10-cpu.yaml",
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


def test_the_cpu_config_carries_the_benchmarked_cpu_recipe():
    """configs/cifar10-cpu.yaml is what `bench/pipeline.py --budget` measured: each key of the
    recipe is fixed to its value in `trial:`, or searched over a space that holds the value."""
    from bench.pipeline import CPU_RECIPE

    cfg = load_search_config(str(CONFIGS[0].parent / "cifar10-cpu.yaml"))
    for key, value in CPU_RECIPE.items():
        if key in cfg.space:
            domain = cfg.space[key]
            values = getattr(domain, "values", None)
            if values is not None:
                assert value in values, key
            else:
                assert domain.low <= value <= domain.high, key
        else:
            assert cfg.trial[key] == value, key
