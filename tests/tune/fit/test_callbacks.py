"""tune.fit.callbacks without a Ray run: the progress lines (KeepResultLogs on a real Ray run:
test_result_logs.py)."""

from __future__ import annotations

from types import SimpleNamespace

from tests.tracking_cases import TRIAL, result
from tune.fit.callbacks import ProgressCallback, describe
from tune.logs import setup_logging


def trial(trial_id: str, **config) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, config={**TRIAL, **config}, last_result={})


def lines(text: str) -> list[str]:
    # "[    12s] epoch 1/3 ..." -> "epoch 1/3 ..."
    return [line.split("] ", 1)[1] for line in text.splitlines() if line.startswith("[")]


def test_describe_shows_searched_values_only():
    config = {"activation": "relu", "lr": 0.0012, "width": 32}
    assert describe(config, ["activation", "lr"]) == "activation=relu lr=1.2e-03"


def test_progress_lines_for_every_event(capsys):
    setup_logging(0)
    progress = ProgressCallback(["activation", "lr"], epochs=2, total=3)
    a, b, c = trial("a"), trial("b", activation="tanh"), trial("c")
    for t in (a, b, c):
        progress.on_trial_start(0, [], t)
    progress.on_trial_result(0, [], a, result(1, 0.5))
    progress.on_trial_result(0, [], a, result(2, 0.75))
    progress.on_trial_complete(0, [], a)
    progress.on_trial_result(0, [], b, {**result(1, 0.1), "diverged": True})
    progress.on_trial_complete(0, [], b)
    progress.on_trial_result(0, [], c, result(1, 0.3))
    progress.on_trial_recover(0, [], c)
    progress.on_trial_error(0, [], c)

    out = lines(capsys.readouterr().err)
    assert out[0] == "start    a  activation=relu lr=3.0e-03  (0/3 done, 1 running)"
    assert out[3].startswith("epoch 1/2 a  val_acc 0.5000  val_loss 1.2000  100 img/s")
    assert out[5] == "done     a  after 2 epochs  (1/3 done, 2 running)"
    assert "DIVERGED" in out[6]
    assert out[7] == "diverged b  after 1 epochs  (2/3 done, 1 running)"
    assert out[9] == "retry    c  from its latest checkpoint"
    assert out[10] == "error    c  (3/3 done, 0 running)"


def test_a_trial_stopped_early_says_stopped(capsys):
    setup_logging(0)
    progress = ProgressCallback(["lr"], epochs=4, total=1)
    t = trial("a")
    progress.on_trial_start(0, [], t)
    progress.on_trial_result(0, [], t, result(1, 0.5))
    progress.on_trial_complete(0, [], t)
    assert lines(capsys.readouterr().err)[-1] == "stopped  a  after 1 epochs  (1/1 done, 0 running)"


def test_quiet_hides_progress(capsys):
    setup_logging(-1)
    try:
        progress = ProgressCallback(["lr"], epochs=1, total=1)
        progress.on_trial_start(0, [], trial("a"))
        assert capsys.readouterr().err == ""
    finally:
        setup_logging(0)
