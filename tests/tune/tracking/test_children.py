"""tune.tracking._children: a search's child runs page by page, and a run map caught up with
the store on a resume."""

from mlflow import MlflowClient

from tests.tracking_cases import CFG, TRIAL, result
from tune.tracking._children import child_runs
from tune.tracking.run_map import RUN_MAP_FILE, RunMap
from tune.tracking.tracker import Tracker


class TwoPerPage(MlflowClient):
    """MLflow's own paging, with pages of two runs instead of a thousand."""

    def search_runs(self, *args, **kwargs):
        return super().search_runs(*args, **{**kwargs, "max_results": 2})


def test_child_runs_reads_every_page(store):
    uri, folder = store
    tracker = Tracker(uri, "cnn-tune", folder)
    runs = tracker.start_search(CFG, "name: s1\n")
    made = {tracker.trial_started(f"t{i}", TRIAL) for i in range(5)}
    found = child_runs(TwoPerPage(uri), runs.experiment_id, runs.parent_run_id)
    assert sorted(r.info.run_id for r in found) == sorted(made)  # 3 pages, none twice


def test_a_resume_catches_up_a_run_map_that_fell_behind_the_store(store):
    """A map save that met a full disk (or a driver killed between a write and its save)
    leaves the map behind MLflow: the resume reads the store, so Ray's re-run of epoch 1
    is not logged twice (CI of bc0fa63: `[1, 1]`), and a child run the map lost is adopted,
    not made twice."""
    uri, folder = store
    map_path = f"{folder}/{RUN_MAP_FILE}"
    first = Tracker(uri, "cnn-tune", folder)
    first.start_search(CFG, "name: s1\n")
    run_a = first.trial_started("a", TRIAL)
    with open(map_path) as f:
        behind = f.read()  # the last map that reached the disk: "a" at step 0, no "b"
    first.trial_result("a", result(1, 0.5))
    run_b = first.trial_started("b", TRIAL)
    first.trial_result("b", result(1, 0.4))
    first.trial_result("b", result(2, 0.45))
    with open(map_path, "w") as f:
        f.write(behind)

    second = Tracker(uri, "cnn-tune", folder)
    runs = second.start_search(CFG, "name: s1\n")
    assert runs.trials["a"].last_step == 1 and runs.trials["a"].best == 0.5
    assert runs.trials["b"].run_id == run_b and runs.trials["b"].last_step == 2
    assert second.trial_started("a", TRIAL) == run_a
    assert second.trial_started("b", TRIAL) == run_b
    second.trial_result("a", result(1, 0.51))  # Ray re-runs the epoch it never saw saved
    second.trial_result("a", result(2, 0.6))
    second.trial_result("b", result(3, 0.3))

    client = MlflowClient(uri)
    assert [(m.step, m.value) for m in client.get_metric_history(run_a, "val_acc")] == [
        (1, 0.5),
        (2, 0.6),
    ]
    assert [m.step for m in client.get_metric_history(run_b, "val_acc")] == [1, 2, 3]
    assert client.get_run(run_b).data.metrics["best_val_acc"] == 0.45  # best kept across
    exp = client.get_experiment_by_name("cnn-tune")
    assert len(client.search_runs([exp.experiment_id])) == 3  # one parent, two children
    assert RunMap.load(map_path).trials["a"].last_step == 2
