"""tune.fit.callbacks without a Ray run: the progress lines and the MLflow trial callback."""

from __future__ import annotations

from types import SimpleNamespace

from mlflow import MlflowClient

from tests.tracking_cases import CFG, TRIAL, result
from tune.fit.callbacks import MlflowTrialCallback, ProgressCallback, describe
from tune.logs import setup_logging
from tune.tracking.tracker import Tracker


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


def test_the_callback_pickles_without_its_tracker(store):
    import pickle

    uri, folder = store
    tracker = Tracker(uri, "cnn-tune", folder)
    callback = MlflowTrialCallback(tracker, epochs=3, time_budget_s=None)
    again = pickle.loads(pickle.dumps(callback))
    assert again.tracker is None and again.epochs == 3


def test_curves_are_logged_when_a_trial_ends_and_the_rest_at_the_end(store, monkeypatch):
    from tune.tracking import artifacts

    uri, folder = store
    tracker = Tracker(uri, "cnn-tune", folder)
    tracker.start_search(CFG, "name: s1\n")
    callback = MlflowTrialCallback(tracker, epochs=3, time_budget_s=None)
    seen = SimpleNamespace(trial_id="seen", config=TRIAL, last_result={})
    # A trial restored by this driver from epoch 1: it did not see epoch 1 itself.
    restored = SimpleNamespace(trial_id="restored", config=TRIAL, last_result={})
    for trial, epochs in ((seen, [1, 2, 3, 2, 3]), (restored, [2, 3])):  # a retry re-runs 2, 3
        callback.on_trial_start(0, [], trial)
        for epoch in epochs:
            callback.on_trial_result(0, [], trial, result(epoch, 0.1 * epoch))
        callback.on_trial_complete(0, [], trial)

    client = MlflowClient(uri)
    curves = "plots/learning_curves.png"
    seen_run, restored_run = tracker.run_id("seen"), tracker.run_id("restored")
    assert [a.path for a in client.list_artifacts(seen_run, "plots")] == [curves]
    assert client.list_artifacts(restored_run, "plots") == []  # epoch 1 unseen: left to the end
    assert tracker.curves_logged == {"seen"}

    drawn, draw = [], artifacts.plot_learning_curves

    def counted(history, path, title):
        drawn.append(title)
        return draw(history, path, title)

    monkeypatch.setattr(artifacts, "plot_learning_curves", counted)
    histories = {t: [result(e, 0.1 * e) for e in (1, 2, 3)] for t in ("seen", "restored")}
    artifacts.log_trial_curves(tracker, histories)
    assert drawn == ["trial restored"]  # the one logged when it ended is not drawn again
    assert [a.path for a in client.list_artifacts(restored_run, "plots")] == [curves]
