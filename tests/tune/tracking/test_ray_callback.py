"""tune.tracking.ray_callback without a Ray run: runs, metrics and curves from trial events."""

from __future__ import annotations

from types import SimpleNamespace

from mlflow import MlflowClient

from tests.tracking_cases import CFG, TRIAL, result
from tune.tracking.ray_callback import MlflowTrialCallback
from tune.tracking.tracker import Tracker


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
