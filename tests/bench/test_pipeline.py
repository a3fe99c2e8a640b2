import math

import pytest

from bench import pipeline
from bench.common import parse_results


def test_arguments_are_checked():
    assert pipeline.parse_args([]).budget is None
    assert pipeline.parse_args(["--budget", "200"]).budget == 200
    with pytest.raises(SystemExit):
        pipeline.parse_args(["--epochs", "0"])
    assert pipeline.parse_args(["--budget", "1", "--activations", "tanh,elu"]).activations == [
        "tanh",
        "elu",
    ]
    assert "relu" in pipeline.parse_args(["--budget", "1", "--activations", "all"]).activations
    for bad in (["--budget", "1", "--activations", "relu,swish2"], ["--activations", "relu"]):
        with pytest.raises(SystemExit):
            pipeline.parse_args(bad)


def test_ablations_are_recipe_keys_with_checked_values(capsys):
    args = pipeline.parse_args(
        ["--budget", "1", "--ablate", "whiten=false", "--ablate", "tta=flip"]
    )
    assert args.ablate == [("whiten", False), ("tta", "flip")]
    bad = {
        "whiten": "is not KEY=VALUE",
        "widen=2": "unknown trial config key 'widen'",
        "tta=sideways": "unknown tta 'sideways'",
        "width=0": "width 0 is out of range",
    }
    for text, words in bad.items():
        with pytest.raises(SystemExit):
            pipeline.parse_args(["--budget", "1", "--ablate", text])
        assert words in capsys.readouterr().err
    for flags in (["--with-cnn"], ["--ablate", "whiten=false"]):
        with pytest.raises(SystemExit):
            pipeline.parse_args(flags)  # without --budget
        assert "needs --budget" in capsys.readouterr().err


def test_lenet_is_the_tutorials_net():
    import torch

    model = pipeline.LeNet()
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) == 2 and len(linears) == 3


def test_throughput_mode_prints_both_speedups(tiny_folder, tmp_path, capsys):
    argv = ["--data-root", str(tiny_folder), "--out", str(tmp_path), "--images", "64"]
    assert pipeline.main([*argv, "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    results = parse_results(out)
    assert set(results) == {"lenet_speedup", "default_speedup"}
    assert all(math.isfinite(v) and v > 0 for v in results.values())
    assert out.count("| lenet ") == 4 + 1  # 2 runs x 2 pipelines, and the summary row


def test_budget_mode_reports_two_accuracies(tiny_folder, tmp_path, capsys):
    argv = ["--data-root", str(tiny_folder), "--out", str(tmp_path), "--budget", "1"]
    assert pipeline.main(argv) == 0
    results = parse_results(capsys.readouterr().out)
    assert set(results) == {"tutorial_budget_acc", "budget_acc"}
    assert all(0.0 <= v <= 1.0 for v in results.values())


def test_budget_mode_runs_todays_recipe_and_each_ablation_back_to_back(
    tiny_folder, tmp_path, capsys
):
    argv = ["--data-root", str(tiny_folder), "--out", str(tmp_path), "--budget", "1"]
    extra = ["--with-cnn", "--ablate", "whiten=false", "--ablate", "lr=0.001"]
    assert pipeline.main([*argv, *extra]) == 0
    out = capsys.readouterr().out
    results = parse_results(out)
    assert set(results) == {
        "tutorial_budget_acc",
        "budget_acc",
        "budget_acc_cnn",
        "budget_acc_whiten_false",
        "budget_acc_lr_0_001",
    }
    assert all(0.0 <= v <= 1.0 for v in results.values())
    assert "| recipe with whiten=false " in out and "| today's cnn " in out


def test_budget_per_activation_reports_each_one(tiny_folder, tmp_path, capsys):
    argv = ["--data-root", str(tiny_folder), "--out", str(tmp_path), "--budget", "1"]
    assert pipeline.main([*argv, "--activations", "sigmoid,tanh"]) == 0
    out = capsys.readouterr().out
    results = parse_results(out)
    assert set(results) == {"budget_acc_sigmoid", "budget_acc_tanh"}
    assert all(0.0 <= v <= 1.0 for v in results.values())
    assert "| sigmoid " in out and "| tanh " in out
