from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from ferry import preprocessing, zoo
from ferry.errors import UserError
from ferry.onnx_file import read_metadata


def test_every_zoo_model_names_a_known_preprocessing() -> None:
    img = Image.new("RGB", (40, 30), (10, 200, 30))
    for entry in zoo.REGISTRY:
        prep = entry.preprocess
        assert prep is not None, entry.name
        arrays = prep(img)
        assert all(isinstance(a, np.ndarray) for a in arrays) and len(arrays) == len(entry.inputs)


def test_y_channel_is_pil_full_range_bt601() -> None:
    (y,) = preprocessing.y_channel(Image.new("RGB", (4, 2), (255, 0, 0)))
    assert y.shape == (1, 1, 2, 4) and y.dtype == np.float32
    assert y[0, 0, 0, 0] == pytest.approx(76 / 255)  # PIL: 0.299 * 255 -> 76


def test_the_name_is_stored_in_exported_files(superres_onnx: Path) -> None:
    task = read_metadata(onnx.load(superres_onnx, load_external_data=False))["task"]
    assert preprocessing.for_task(task) is preprocessing.y_channel
    assert preprocessing.for_task({}) is None
    with pytest.raises(UserError, match="known: imagenet, rgb, rgb-uint8, y"):
        preprocessing.for_task({"preprocess": "lab"})
