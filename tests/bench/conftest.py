"""A tiny ImageFolder of random 32x32 JPEGs: the benchmark scripts' layout, in seconds."""

import numpy as np
import pytest
from PIL import Image

CLASSES = 10
PER_CLASS = 12


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-cifar")
    rng = np.random.default_rng(0)
    for c in range(CLASSES):
        folder = root / "train" / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(PER_CLASS):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:04d}.jpg")
    return root
