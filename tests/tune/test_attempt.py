"""tune.attempt: a failed start takes back exactly what it made; an overwrite keeps the old
experiment until the new start has passed its checks."""

from __future__ import annotations

import os

from tune.attempt import ASIDE, StartAttempt
from tune.lock import LOCK_FILE, OWNER_FILE


def make(folder, *names, text="new"):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(text)


def test_a_failed_fresh_start_removes_everything_it_made(tmp_path):
    folder = tmp_path / "results" / "nested" / "demo"
    attempt = StartAttempt(str(folder))
    make(folder, LOCK_FILE, OWNER_FILE, "cnn_tune_config.yaml")
    (folder / "state").mkdir()
    attempt.undo()
    assert sorted(os.listdir(folder)) == sorted([LOCK_FILE, OWNER_FILE])  # held until released
    attempt.remove_lock_files()
    assert os.listdir(tmp_path) == []  # the parent folders it made went too


def test_what_existed_before_stays(tmp_path):
    folder = tmp_path / "demo"
    make(folder, "mine.txt", LOCK_FILE, text="old")
    attempt = StartAttempt(str(folder))
    make(folder, OWNER_FILE, "cnn_tune_config.yaml")
    attempt.undo()
    attempt.remove_lock_files()
    assert sorted(os.listdir(folder)) == sorted(["mine.txt", LOCK_FILE])  # a lock it found stays


def test_a_committed_start_keeps_its_files_and_drops_the_replaced_experiment(tmp_path):
    folder = tmp_path / "demo"
    make(folder, "cnn_tune_config.yaml", "run_map.json", text="old")
    attempt = StartAttempt(str(folder))
    make(folder, LOCK_FILE)
    attempt.set_aside()
    assert sorted(os.listdir(folder)) == sorted([ASIDE, LOCK_FILE])
    make(folder, "cnn_tune_config.yaml")
    attempt.commit()
    attempt.remove_lock_files()  # nothing: only an undone start removes lock files
    assert sorted(os.listdir(folder)) == sorted(["cnn_tune_config.yaml", LOCK_FILE])
    assert (folder / "cnn_tune_config.yaml").read_text() == "new"


def test_a_failed_overwrite_puts_the_old_experiment_back_whole(tmp_path):
    folder = tmp_path / "demo"
    make(folder, "cnn_tune_config.yaml", "run_map.json", text="old")
    (folder / "trial_0").mkdir()
    (folder / "trial_0" / "result.json").write_text("old")
    attempt = StartAttempt(str(folder))
    make(folder, LOCK_FILE, OWNER_FILE)
    attempt.set_aside()
    make(folder, "cnn_tune_config.yaml", "new_only.txt")
    attempt.undo()
    attempt.remove_lock_files()
    assert sorted(os.listdir(folder)) == sorted(["cnn_tune_config.yaml", "run_map.json", "trial_0"])
    assert (folder / "cnn_tune_config.yaml").read_text() == "old"
    assert (folder / "trial_0" / "result.json").read_text() == "old"


def test_an_aside_left_by_a_killed_overwrite_is_replaced(tmp_path):
    folder = tmp_path / "demo"
    make(folder / ASIDE, "stale.txt", text="older")
    make(folder, "cnn_tune_config.yaml", text="old")
    attempt = StartAttempt(str(folder))
    attempt.set_aside()
    assert os.listdir(folder / ASIDE) == ["cnn_tune_config.yaml"]


def test_a_folder_another_start_filled_meanwhile_is_kept(tmp_path):
    folder = tmp_path / "results" / "demo"
    attempt = StartAttempt(str(folder))
    make(folder, LOCK_FILE)
    attempt.undo()
    make(tmp_path / "results" / "other", "cnn_tune_config.yaml")  # another search, meanwhile
    attempt.remove_lock_files()
    assert os.listdir(tmp_path / "results") == ["other"]
