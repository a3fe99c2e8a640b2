"""tune.tracking._notes: the Markdown descriptions of a search's runs, and the command that
reproduces a
trial."""

from __future__ import annotations

import shlex

from tests.tracking_cases import CFG
from tune.cli import build_parser
from tune.commands.trial import trial_values_from_args
from tune.outcomes import TrialRecord
from tune.summary import summarize
from tune.tracking._notes import reproduce_command, running_note, search_note, trial_note

FIXED = {"dataset": "mnist5k", "epochs": 3, "augment": "crop", "batch_size": 64, "width": 16}


def make_summary(n: int = 7):
    records = []
    for i in range(n):
        config = {**FIXED, "activation": ["relu", "tanh"][i % 2], "lr": 1e-3 * (i + 1)}
        metrics = {"epoch": 3 if i % 3 else 1, "val_acc": 0.5 + 0.05 * i, "test_acc": 0.4}
        records.append(TrialRecord(f"t_{i:05d}", config, metrics))
    records.append(TrialRecord("t_broken", {**FIXED, "activation": "relu", "lr": 0.01}, {}, "boom"))
    return summarize(
        records, name="s1", epochs=3, metric="val_acc", mode="max",
        searched_keys=["activation", "lr"], wall_seconds=42.0, storage_path="/r",
        experiment_path="/r/s1",
    )  # fmt: skip


def test_the_reproduce_command_trains_the_same_config():
    from trainables.config import TrialConfig

    config = {**FIXED, "activation": "tanh", "lr": 0.0031, "label_smoothing": 0.1}
    command = reproduce_command(config)
    words = shlex.split(command)
    assert words[:2] == ["cnn-tune", "train"]
    args = build_parser().parse_args(words[1:])  # what `cnn-tune train` itself parses
    again = TrialConfig.from_dict(trial_values_from_args(args))
    assert again == TrialConfig.from_dict(config)
    assert "--set lr=0.0031" in command and "--set label_smoothing=0.1" in command


def test_the_parent_note_tells_the_search_its_outcome_and_its_best():
    summary = make_summary()
    note = search_note(CFG, summary, {"activation": 0.7, "lr": 0.3}, ["t_00000", "t_00006"])
    assert note.startswith("**Search `s1`** ended: 8 trials")
    assert "1 failed" in note and "stopped early" in note
    assert '`activation`: ["relu", "tanh"]' in note and "loguniform" in note  # the space
    assert "| algorithm | `random`, seed 0, 8 trials |" in note
    table = [line for line in note.splitlines() if line.startswith("| ") and "t_0" in line]
    assert len(table) == 5  # the top 5
    assert table[0].startswith("| 1 | t_00006 | relu |")  # the best first
    assert "**Best**: trial `t_00006`" in note
    assert "cnn-tune train --set" in note
    assert "`activation` 0.70, `lr` 0.30" in note
    assert "`t_00000`, `t_00006`" in note and "cnn_tune.pareto=true" in note


def test_the_note_says_when_importance_was_not_estimated():
    summary = make_summary(3)
    assert "not estimated; fewer than 6 trials" in search_note(CFG, summary, None, [])
    summary.interrupted = True
    note = search_note(CFG, summary, None, [])
    assert "interrupted" in note.splitlines()[0] and "when the search ends" in note


def test_running_note_and_trial_notes():
    assert running_note(CFG).startswith("**Search `s1`**: running.")
    summary = make_summary()
    second = next(r for r in summary.trials if r["trial_id"] == "t_00005")
    note = trial_note(summary, second, 2, "completed")
    assert "Trial `t_00005` of search `s1`" in note and "`activation=tanh`" in note
    assert "ran every epoch (last epoch 3); rank 2 of 8 by `val_acc` (0.7500)" in note
    early = next(r for r in summary.trials if r["trial_id"] == "t_00006")
    assert "stopped early by the scheduler (last epoch 1)" in trial_note(
        summary, early, 1, "scheduler"
    )
    broken = next(r for r in summary.trials if r["trial_id"] == "t_broken")
    assert "raised an error" in trial_note(summary, broken, None, "error")
    assert "unranked" in trial_note(summary, broken, None, "error")
