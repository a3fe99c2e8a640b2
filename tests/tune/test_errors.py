"""tune.errors: the exit-code table and the errors that carry each code."""

from __future__ import annotations

import pickle

from tune.errors import (
    BadInput,
    DriverError,
    ExitCode,
    Locked,
    SearchConfigError,
    Unreachable,
    describe_kind,
)
from tune.lock import ExperimentLocked
from tune.tracking.report import ReportError
from tune.tracking.store import TrackingUnreachable


def test_the_exit_code_table():
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 130]


def test_each_error_carries_its_code():
    assert BadInput.exit_code == SearchConfigError.exit_code == ExitCode.BAD_INPUT
    assert ReportError.exit_code == ExitCode.BAD_INPUT
    assert Unreachable.exit_code == TrackingUnreachable.exit_code == ExitCode.UNREACHABLE
    assert Locked.exit_code == ExperimentLocked.exit_code == ExitCode.LOCKED
    for cls in (SearchConfigError, ReportError, TrackingUnreachable, ExperimentLocked):
        assert issubclass(cls, DriverError)


def test_config_error_pickles_with_its_key():
    err = SearchConfigError("space.lr", "bad")
    again = pickle.loads(pickle.dumps(err))
    assert (again.key, str(again)) == ("space.lr", "space.lr: bad")
    assert isinstance(again, ValueError)


def test_describe_kind():
    assert [describe_kind(v) for v in (None, {}, [], 3, "x")] == [
        "nothing",
        "a mapping",
        "a list",
        "an int",
        "a str",
    ]


def test_an_error_with_control_characters_is_one_line(tmp_path, capsys):
    """Found by the config fuzzer: a key holding a newline or a carriage return split the
    error across lines."""
    from tune.cli import main
    from tune.errors import one_line

    assert one_line("a\nb\rc\td é") == "a\\nb\\rc\\td é"
    (tmp_path / "s.yaml").write_text(
        'name: x\ndataset: mnist5k\nspace: {lr: [0.1]}\n"\\nt\\r": 1\n'
    )
    assert main(["validate", str(tmp_path / "s.yaml")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unknown key" in err
