"""trainables.data: the fixed val split, the trial config's data fields, the kept dataset."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from tests.trainables.raw_files import assert_splits_equal, write_image_folder, write_mnist
from trainables import cache, data
from trainables.cache import cache_path
from trainables.config import TrialConfig
from trainables.data import DataError, load_dataset, split_val


def test_val_split_is_fixed_whatever_the_seed_or_cache(tmp_path):
    write_mnist(tmp_path / "raw", "MNIST", n_train=40)

    torch.manual_seed(0)
    a = load_dataset("mnist", tmp_path / "raw", cache_dir=tmp_path / "c1")
    torch.manual_seed(99)
    b = load_dataset("mnist", tmp_path / "raw", cache_dir=tmp_path / "c1")  # cached
    c = load_dataset("mnist", tmp_path / "raw", cache_dir=tmp_path / "c2")  # decoded again

    assert len(a.val_x) == 4  # round(0.1 * 40)
    assert_splits_equal(a, b)
    assert_splits_equal(a, c)
    assert not torch.equal(a.val_x, torch.cat([a.train_x, a.val_x])[:4])  # a draw, not a slice


def test_split_val_holds_out_the_same_share_whatever_the_seed():
    x, y = torch.arange(20), torch.arange(20) * 10

    torch.manual_seed(7)
    train_x, train_y, val_x, val_y = split_val(x, y, 0.25, "toy")
    torch.manual_seed(8)
    again = split_val(x, y, 0.25, "toy")

    assert len(val_x) == 5 and len(train_x) == 15  # round(0.25 * 20)
    assert all(torch.equal(a, b) for a, b in zip((train_x, train_y, val_x, val_y), again))
    assert torch.equal(train_y, train_x * 10) and torch.equal(val_y, val_x * 10)  # pairs kept
    assert sorted(torch.cat([train_x, val_x]).tolist()) == list(range(20))
    assert torch.equal(val_x, val_x.sort().values)  # each split keeps the original order


@pytest.mark.parametrize("fraction", [0.0, 1.0, 0.99])
def test_split_val_refuses_a_fraction_that_empties_a_split(fraction):
    with pytest.raises(DataError, match=r"dataset 'toy': val_fraction .* of 10 train images"):
        split_val(torch.arange(10), torch.arange(10), fraction, "toy")


def test_dataset_from_config_passes_the_data_fields(tmp_path):
    write_image_folder(tmp_path / "raw", per_class=4)
    cfg = TrialConfig(
        dataset="imagefolder",
        data_root=str(tmp_path / "raw"),
        cache_dir=str(tmp_path / "c"),
        image_size=12,
        image_mode="L",
        val_fraction=0.25,
    )

    splits = data.dataset_from_config(cfg)

    assert splits.train_x.shape == (6, 1, 12, 12) and splits.val_x.shape == (2, 1, 12, 12)


def test_a_reused_worker_reads_the_cache_file_again_only_when_it_changes(tmp_path, monkeypatch):
    reads, read = [], cache._read_cache
    monkeypatch.setattr(cache, "_read_cache", lambda path: reads.append(path) or read(path))
    first = load_dataset("mnist5k", cache_dir=tmp_path, keep=True)  # decoded and cached
    reads.clear()
    again = load_dataset("mnist5k", cache_dir=tmp_path, keep=True)  # the worker's next trial
    assert reads == [] and again.train_x is first.train_x
    load_dataset("mnist5k", cache_dir=tmp_path)  # without keep (the driver): read every time
    assert reads == [cache_path("mnist5k", None, 32, "RGB", cache_dir=tmp_path)]
    reads.clear()

    path = cache_path("mnist5k", None, 32, "RGB", cache_dir=tmp_path)
    shutil.copy(path, path + ".new")
    os.replace(path + ".new", path)  # what a rebuild does: a new file in its place
    rebuilt = load_dataset("mnist5k", cache_dir=tmp_path, keep=True)
    assert reads == [path]
    assert rebuilt.train_x is not first.train_x
    assert_splits_equal(first, rebuilt)
