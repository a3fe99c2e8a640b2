"""tune.fit.callbacks.KeepResultLogs on a real Ray Tune run: a retried trial keeps every epoch
in Ray's `result.json`.

The race it closes: Ray restores a retried trial's result log from storage, whose copy is as
old as Ray's last background sync. The trainable below puts storage in the state that sync
leaves when it ran after the trial started and before its first report (an empty log), then
fails right after that report, so the race's bad timing happens every time.
"""

from __future__ import annotations

import json
import os
import tempfile

import pytest

from tune.fit.callbacks import KeepResultLogs

pytestmark = pytest.mark.ray


def run_with_a_retry(tmp_path, callbacks: list) -> list[int]:
    """One trial of 3 epochs that fails once in epoch 2; the epochs its result.json holds."""
    from ray import tune

    marker = str(tmp_path / "fired")
    storage = tmp_path / "results"

    def trainable(config):  # nested: pickled by value for the shared head's workers
        checkpoint = tune.get_checkpoint()
        first = 1
        if checkpoint is not None:
            with open(os.path.join(checkpoint.to_directory(), "epoch")) as f:
                first = int(f.read()) + 1
        for epoch in range(first, 4):
            if epoch == 2 and not os.path.exists(marker):
                open(marker, "w").close()
                # Storage's copy as a background sync between start and first report left it
                # (the context's trial dir is the driver's copy; storage has the same name).
                trial = os.path.basename(tune.get_context().get_trial_dir())
                stale = os.path.join(storage, "retry", trial, "result.json")
                open(stale, "w").close()
                raise RuntimeError("injected fault right after the first report")
            with tempfile.TemporaryDirectory() as folder:
                with open(os.path.join(folder, "epoch"), "w") as f:
                    f.write(str(epoch))
                tune.report({"epoch": epoch}, checkpoint=tune.Checkpoint.from_directory(folder))

    run = tune.RunConfig(
        name="retry",
        storage_path=str(storage),
        failure_config=tune.FailureConfig(max_failures=1),
        callbacks=callbacks,
        verbose=0,
    )
    results = tune.Tuner(trainable, run_config=run).fit()
    assert not results.errors and os.path.exists(marker)  # it failed once, then finished
    with open(os.path.join(results[0].path, "result.json")) as f:
        return [json.loads(line)["epoch"] for line in f if line.strip()]


@pytest.fixture
def joined(ray_address):
    import ray

    ray.init(address=ray_address, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_a_retried_trial_keeps_every_epoch_in_rays_result_log(tmp_path, joined):
    assert run_with_a_retry(tmp_path, [KeepResultLogs()]) == [1, 2, 3]


def test_without_it_the_race_loses_the_first_epoch(tmp_path, joined):
    # The reproduction is real: Ray alone restores the stale copy over the driver's.
    assert run_with_a_retry(tmp_path, []) == [2, 3]
