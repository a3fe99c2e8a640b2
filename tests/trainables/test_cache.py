"""trainables.cache: one checksummed file per dataset and cache key, decoded once per node."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import shutil
import time

import torch

from tests.trainables.raw_files import assert_splits_equal, digest, write_cifar, write_image_folder
from trainables import cache, datasets
from trainables.cache import CHECKSUM_SUFFIX, cache_path
from trainables.data import load_dataset


def test_mnist5k_cached_load_is_identical(mnist5k_cache):
    first = load_dataset("mnist5k", cache_dir=mnist5k_cache)
    torch.manual_seed(1234)  # a trial's seed must not move the split
    again = load_dataset("mnist5k", cache_dir=mnist5k_cache)

    assert_splits_equal(first, again)
    assert os.path.exists(cache_path("mnist5k", None, 32, "RGB", cache_dir=mnist5k_cache))


def test_cached_load_does_not_touch_raw_data(tmp_path, monkeypatch):
    write_cifar(tmp_path / "cifar", monkeypatch)
    write_image_folder(tmp_path / "folder", per_class=2)
    first = {
        "cifar10": load_dataset("cifar10", tmp_path / "cifar", cache_dir=tmp_path / "c"),
        "imagefolder": load_dataset("imagefolder", tmp_path / "folder", cache_dir=tmp_path / "c"),
    }
    shutil.rmtree(tmp_path / "cifar")
    shutil.rmtree(tmp_path / "folder")

    assert_splits_equal(
        first["cifar10"], load_dataset("cifar10", tmp_path / "cifar", cache_dir=tmp_path / "c")
    )
    assert_splits_equal(
        first["imagefolder"],
        load_dataset("imagefolder", tmp_path / "folder", cache_dir=tmp_path / "c"),
    )
    assert not list((tmp_path / "c").glob("*.tmp"))


def test_cache_key_holds_only_the_settings_that_change_the_decode(tmp_path, monkeypatch):
    root, cache = tmp_path / "raw", tmp_path / "c"
    folder_paths = {
        cache_path("imagefolder", root, size, mode, cache)
        for size in (16, 24)
        for mode in ("RGB", "L")
    }
    assert len(folder_paths) == 4
    # CIFAR is never resized, so image_size and image_mode must not split its cache.
    cifar_paths = {cache_path("cifar10", root, size, "L", cache) for size in (16, 24)}
    assert len(cifar_paths) == 1
    assert cache_path("cifar10", root, 32, "RGB", cache) != cache_path(
        "cifar10", tmp_path / "other", 32, "RGB", cache
    )
    monkeypatch.chdir(tmp_path)  # a relative root resolves to the same key
    assert cache_path("cifar10", "raw", 32, "RGB", "c") == cifar_paths.pop()
    assert cache_path("mnist5k", "anything", 32, "RGB", cache) == cache_path(
        "mnist5k", None, 8, "L", cache
    )

    write_image_folder(root, per_class=2)
    for size in (16, 24):
        load_dataset("imagefolder", root, cache_dir=cache, image_size=size)
    assert sorted(p.name for p in cache.glob("*.pt")) == sorted(
        os.path.basename(cache_path("imagefolder", root, size, "RGB", cache)) for size in (16, 24)
    )


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CNN_TUNE_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.default_cache_dir() == str(tmp_path / "mine")
    monkeypatch.delenv("CNN_TUNE_CACHE")
    assert cache.default_cache_dir() == str(tmp_path / "xdg" / "cnn-tune")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.default_cache_dir() == str(tmp_path / "home" / ".cache" / "cnn-tune")


def _load_in_child(root, cache_dir, marker, barrier, results) -> None:
    """One of two processes that ask for the same uncached dataset at the same moment."""
    spec = datasets.DATASETS["imagefolder"]

    def counting_build(req):
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.0)  # s; hold the lock long enough that the other process must wait on it
        return spec.build(req)

    datasets.DATASETS["imagefolder"] = dataclasses.replace(spec, build=counting_build)
    barrier.wait(timeout=60)
    start = time.perf_counter()
    splits = load_dataset("imagefolder", root, cache_dir=cache_dir, image_size=16)
    results.put((os.getpid(), time.perf_counter() - start, digest(splits)))


def test_two_processes_decode_once(tmp_path):
    write_image_folder(tmp_path / "raw", per_class=4)
    marker = tmp_path / "builds.txt"
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    args = (str(tmp_path / "raw"), str(tmp_path / "c"), str(marker), barrier, results)
    procs = [ctx.Process(target=_load_in_child, args=args) for _ in range(2)]
    for proc in procs:
        proc.start()
    got = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0

    builders = marker.read_text().split()
    assert len(builders) == 1  # one decode on the node
    assert got[0][2] == got[1][2]  # and both processes got the same tensors
    waiter = next(elapsed for pid, elapsed, _ in got if str(pid) != builders[0])
    assert waiter > 0.5  # s; it blocked on the lock while the other built, then read the file
    assert len(list((tmp_path / "c").glob("*.pt"))) == 1
    assert not list((tmp_path / "c").glob("*.tmp"))


def test_damaged_cache_is_detected_by_checksum_and_rebuilt(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cnn_tune")
    first = load_dataset("mnist5k", cache_dir=str(tmp_path))
    path = cache_path("mnist5k", None, 32, "RGB", cache_dir=str(tmp_path))
    assert os.path.exists(path + CHECKSUM_SUFFIX)
    with open(path, "r+b") as f:  # flip bytes in the middle: still a file, wrong content
        f.seek(os.path.getsize(path) // 2)
        f.write(b"\x00\xff\x00\xff")
    again = load_dataset("mnist5k", cache_dir=str(tmp_path))
    assert torch.equal(first.train_x, again.train_x)
    messages = [record.getMessage() for record in caplog.records]
    assert (
        f"cnn-tune data: ignoring unreadable cache file {path} (ValueError: checksum mismatch)"
        in (messages)
    )
    assert sum(m.startswith(f"cnn-tune data: cached mnist5k in {path} (") for m in messages) == 2
