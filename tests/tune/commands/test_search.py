"""tune.commands.search through `tune.cli.main` in this process: what `validate` prints, and
what `run` and `resume` refuse before Ray starts (the searches themselves: tests/scenarios)."""

from __future__ import annotations

import pytest
import yaml

from tests.config_cases import BASE, with_changes, write
from tune.cli import main

GRID = with_changes(
    space={"activation": ["relu", "tanh"], "lr": [1e-3, 3e-3]},
    search={"algorithm": "grid", "num_samples": 2},
)


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_validate_prints_the_resolved_config_and_the_grids_trial_count(here, capsys):
    path = write(here, GRID)
    assert main(["validate", str(path), "--name", "other", "--set", "epochs=2"]) == 0
    out, err = capsys.readouterr()
    resolved = yaml.safe_load(out)
    assert (resolved["name"], resolved["epochs"]) == ("other", 2)
    assert resolved["search"]["algorithm"] == "grid"
    assert "8 trials; config OK" in err  # 2 x 2 combinations, twice
    assert sorted(p.name for p in here.iterdir()) == ["search.yaml"]  # it starts nothing


@pytest.mark.parametrize(
    "data, args, key",
    [
        (BASE, ["--set", "search.nope=1"], "search.nope"),
        (with_changes(epochz=3), [], "epochz"),
        (with_changes(search={"mode": "maximum"}), [], "search.mode"),
    ],
)
def test_a_bad_key_exits_2_with_one_line_naming_it(here, capsys, data, args, key):
    path = write(here, data)
    assert main(["validate", str(path), *args]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], err


def test_resume_of_an_unknown_search_exits_2_before_ray(here, capsys):
    assert main(["resume", "never-ran", "--storage-path", str(here / "ray_results")]) == 2
    assert "never-ran" in capsys.readouterr().err
    assert not (here / "ray_results").exists()


def test_run_takes_either_resume_if_exists_or_overwrite_not_both(here, capsys):
    path = write(here, BASE)
    assert main(["run", str(path), "--resume-if-exists", "--overwrite"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--overwrite" in lines[0]
