import json

import pytest

from bench import search


def write_trial(folder, epoch_seconds, total, started):
    folder.mkdir(parents=True)
    rows, clock = [], started
    for i, seconds in enumerate(epoch_seconds):
        clock += seconds + 0.5  # each report comes 0.5 s after its epoch's work
        rows.append({"epoch": i + 1, "epoch_seconds": seconds, "time_this_iter_s": seconds + 0.5,
                     "timestamp": clock})  # fmt: skip
    rows[-1]["time_total_s"] = total
    (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_trial_times_come_from_every_result_json(tmp_path):
    write_trial(tmp_path / "trial_a", [1.0, 2.0], 4.5, started=100.0)
    write_trial(tmp_path / "trial_b", [3.0], 3.5, started=101.0)
    (tmp_path / "experiment_state.json").write_text("{}")
    assert search.trial_times(tmp_path) == {
        "trial_a": search.TrialTimes(epochs=3.0, total=4.5, start=100.0, end=104.0),
        "trial_b": search.TrialTimes(epochs=3.0, total=3.5, start=101.0, end=104.5),
    }


def test_overhead_ratio_is_wall_over_ideal():
    # 60 s of trial compute on 2 slots cannot take less than 30 s.
    assert search.overhead_ratio(wall=45.0, compute=60.0, slots=2) == pytest.approx(1.5)


def test_the_search_writes_only_under_its_folder(tmp_path):
    command = search.search_command(tmp_path, trials=16, epochs=4, scheduler="fifo")
    config = tmp_path / "bench-search.yaml"
    assert command[1:3] == ["run", str(config)] and "--json" in command
    sets = dict(command[i + 1].split("=", 1) for i, a in enumerate(command) if a == "--set")
    assert sets["search.num_samples"] == "16"
    for key in ("storage_path", "cache_dir"):
        assert sets[key].startswith(str(tmp_path))
    assert sets["mlflow.tracking_uri"] == f"sqlite:///{tmp_path / 'mlruns.db'}"


def test_arguments_are_checked():
    args = search.parse_args([])
    assert (args.trials, args.epochs, args.scheduler) == (16, 12, "fifo")
    with pytest.raises(SystemExit):
        search.parse_args(["--trials", "0"])


def test_the_config_is_pinned_and_valid(tmp_path):
    # bench/search.py keeps its own trial settings: a change to configs/demo.yaml moves no figure.
    from tune.config.parse import load_search_config

    search.search_command(tmp_path, trials=16, epochs=4, scheduler="fifo")
    cfg = load_search_config(str(tmp_path / "bench-search.yaml"))
    assert (cfg.dataset, cfg.epochs, cfg.fixed_trial_config()["width"]) == ("mnist5k", 12, 16)
    assert cfg.searched_keys() == ["activation", "augment", "batch_size", "lr"]
