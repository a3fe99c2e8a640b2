import pytest

from trainables.config import ConfigError, TrialConfig


def test_defaults_are_valid():
    cfg = TrialConfig.from_dict({})
    assert cfg.dataset == "mnist5k"
    assert cfg.activation == "relu"
    assert cfg.augment == "crop"


def test_strings_from_yaml_are_coerced():
    cfg = TrialConfig.from_dict({"lr": "3e-3", "batch_size": "64", "download": "false"})
    assert cfg.lr == 3e-3 and cfg.batch_size == 64 and cfg.download is False


def test_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = TrialConfig.from_dict({"data_root": "data", "cache_dir": "cache"})
    assert cfg.data_root == str(tmp_path / "data")
    assert cfg.cache_dir == str(tmp_path / "cache")


def test_validate_only_checks_and_resolve_paths_rewrites(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = TrialConfig(data_root="data", cache_dir="~/cache")

    cfg.validate()
    assert (cfg.data_root, cfg.cache_dir) == ("data", "~/cache")

    cfg.resolve_paths()
    assert cfg.data_root == str(tmp_path / "data")
    assert cfg.cache_dir == str(tmp_path / "home" / "cache")
    assert TrialConfig.from_dict({"data_root": "data", "cache_dir": "~/cache"}) == cfg


@pytest.mark.parametrize(
    "values, words",
    [
        ({"activaton": "relu"}, ["unknown trial config key 'activaton'", "activation"]),
        ({"activation": "swish2"}, ["activation", "'swish2'", "leaky_relu"]),
        ({"augment": "mixup"}, ["augment", "'mixup'", "flip-crop"]),
        ({"dataset": "imagenet"}, ["dataset", "'imagenet'", "cifar10"]),
        ({"lr": 0}, ["lr", "allowed: > 0"]),
        ({"lr": -1e-3}, ["lr", "> 0"]),
        ({"lr": "fast"}, ["lr", "'fast'", "float"]),
        ({"batch_size": 0}, ["batch_size", ">= 2"]),
        ({"batch_size": 1}, ["batch_size", ">= 2"]),
        ({"batch_size": 12.5}, ["batch_size", "int"]),
        ({"epochs": 0}, ["epochs", ">= 1"]),
        ({"dropout": 1.0}, ["dropout", "< 1"]),
        ({"label_smoothing": -0.1}, ["label_smoothing", ">= 0"]),
        ({"ema": 1.0}, ["ema", "< 1"]),
        ({"ema": -0.5}, ["ema", ">= 0"]),
        ({"lr_schedule": "cosine-ish"}, ["lr_schedule", "onecycle"]),
        ({"device": "tpu"}, ["device", "cuda"]),
        ({"precision": "fp16"}, ["precision", "'fp16'", "bf16"]),
        ({"depth": 9}, ["depth", "<= 5"]),
        ({"seed": None}, ["seed", "null"]),
        ({"max_train_images": 1}, ["max_train_images", ">= 2"]),
        ({"data_root": "a\x00b"}, ["data_root", "NUL byte"]),
        ({"cache_dir": "c/" + "x" * 300}, ["cache_dir", "300 bytes", "at most 255"]),
        ({"cache_dir": "s3://b/\x00"}, ["cache_dir", "NUL byte"]),
    ],
)
def test_bad_values_name_key_and_allowed(values, words):
    with pytest.raises(ConfigError) as info:
        TrialConfig.from_dict(values)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message
