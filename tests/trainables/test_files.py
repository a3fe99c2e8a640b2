"""trainables.files: all-or-nothing writes, a file's SHA-256, and paths the OS takes."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from trainables.files import (
    NAME_MAX,
    atomic_write,
    path_problem,
    replaced_atomically,
    sha256_file,
    sha256_of,
    shorten,
)


def test_a_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("old")
    with atomic_write(path) as f:
        f.write("new")
        assert path.read_text() == "old"  # nothing seen before the block ends
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["state.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("old")
    with pytest.raises(OSError), atomic_write(path) as f:
        f.write("half")
        raise OSError(28, "No space left on device")
    assert path.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["state.json"]


def test_a_secret_file_is_owner_only_from_its_creation(tmp_path):
    path = str(tmp_path / "config.yaml")
    with replaced_atomically(path, mode=0o600) as tmp:
        assert stat.S_IMODE(os.stat(tmp).st_mode) == 0o600  # already while it is written
        with open(tmp, "w") as f:
            f.write("tracking_uri: http://alice:secret@host")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_binary_durable_writes_and_the_digest(tmp_path):
    data = os.urandom(3 << 20)  # more than one chunk
    path = tmp_path / "cache.pt"
    with atomic_write(path, binary=True, durable=True) as f:
        f.write(data)
    assert sha256_file(str(path)) == hashlib.sha256(data).hexdigest()
    with open(path, "rb") as f:
        f.seek(1 << 20)
        assert sha256_of(f) == hashlib.sha256(data[1 << 20 :]).hexdigest()  # from where it is


@pytest.mark.parametrize(
    "value, words",
    [
        ("runs/a\x00b", ["NUL byte"]),
        ("runs/\ud800", ["filesystem encoding cannot write"]),  # a lone surrogate
        ("runs/" + "n" * (NAME_MAX + 1), [f"{NAME_MAX + 1} bytes", f"at most {NAME_MAX}"]),
        ("/a" * 2048, ["4096 bytes long"]),
    ],
    ids=["nul", "surrogate", "long-component", "long-path"],
)
def test_paths_the_os_would_refuse_are_named(value, words, tmp_path):
    problem = path_problem(value)
    assert problem is not None and all(w in problem for w in words), problem
    if "\x00" not in value and "\ud800" not in value:  # what the OS itself says
        (tmp_path / "runs").mkdir()
        with pytest.raises(OSError, match="too long"):
            os.stat(tmp_path / value.lstrip("/"))


def test_ordinary_paths_and_uris_pass():
    assert path_problem("ray_results/é 名前/x") is None
    assert path_problem("runs/\udc80") is None  # a byte the filesystem gave (surrogateescape)
    assert path_problem("s3://bucket/" + "k" * 300, uri=True) is None  # the store's own rules
    assert path_problem("s3://bucket/a\x00", uri=True) is not None


def test_shorten_keeps_error_lines_short():
    assert shorten("abc") == "abc"
    assert len(shorten("x" * 5000)) < 90
