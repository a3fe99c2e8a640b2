"""trainables.files: all-or-nothing writes and a file's SHA-256."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from trainables.files import atomic_write, replaced_atomically, sha256_file, sha256_of


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
