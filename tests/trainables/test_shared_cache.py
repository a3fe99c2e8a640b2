"""trainables.shared_cache: a node without the raw files copies the decoded file from shared
storage (here a `file://` URI, through the same pyarrow.fs calls as s3://) and checks it."""

from __future__ import annotations

import shutil

import pytest

from tests.trainables.raw_files import assert_splits_equal, write_image_folder
from trainables import datasets
from trainables.cache import cache_path
from trainables.data import load_dataset
from trainables.datasets import DataError


def test_a_node_without_the_raw_files_copies_the_shared_file(tmp_path, monkeypatch):
    raw, shared = tmp_path / "raw", (tmp_path / "shared").as_uri()
    write_image_folder(raw, per_class=2)

    monkeypatch.setenv("CNN_TUNE_CACHE", str(tmp_path / "node-a"))  # the driver's node
    staged = load_dataset("imagefolder", raw, cache_dir=shared, image_size=8)
    local = cache_path("imagefolder", raw, 8, "RGB", shared)
    assert local.startswith(str(tmp_path / "node-a"))  # a URI is not a local folder
    name = local.rsplit("/", 1)[1]
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == sorted(
        [name, name + ".sha256", name + ".source"]
    )

    shutil.rmtree(raw)  # another node: no raw files, an empty cache of its own
    monkeypatch.setenv("CNN_TUNE_CACHE", str(tmp_path / "node-b"))
    decoded = []
    monkeypatch.setattr(datasets, "_decode_image", lambda *a, **k: decoded.append(a))
    copied = load_dataset("imagefolder", raw, cache_dir=shared, image_size=8)
    assert decoded == []  # copied, not decoded
    assert_splits_equal(staged, copied)
    assert (tmp_path / "node-b" / name).exists()


def test_a_damaged_shared_copy_is_not_trusted(tmp_path, monkeypatch):
    raw, shared = tmp_path / "raw", (tmp_path / "shared").as_uri()
    write_image_folder(raw, per_class=2)
    monkeypatch.setenv("CNN_TUNE_CACHE", str(tmp_path / "node-a"))
    load_dataset("imagefolder", raw, cache_dir=shared, image_size=8)
    for path in (tmp_path / "shared").iterdir():
        if path.suffix == ".pt":
            path.write_bytes(path.read_bytes()[:-100] + b"\0" * 100)  # a torn upload
    shutil.rmtree(raw)
    monkeypatch.setenv("CNN_TUNE_CACHE", str(tmp_path / "node-b"))
    with pytest.raises(DataError, match="no train/ folder"):  # not loaded: rebuilt, which fails
        load_dataset("imagefolder", raw, cache_dir=shared, image_size=8)
