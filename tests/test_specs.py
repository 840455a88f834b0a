from __future__ import annotations

import numpy as np
import pytest

from ferry.errors import UserError
from ferry.specs import Dim, parse_input_spec, parse_input_specs, parse_kwargs


def test_static_spec() -> None:
    spec = parse_input_spec("1,3,224,224")
    assert spec.shape == (1, 3, 224, 224)
    assert spec.dtype == "float32"
    assert spec.dynamic_axes == {}


def test_x_shorthand_is_static() -> None:
    assert parse_input_spec("1x3x224x224").shape == (1, 3, 224, 224)


def test_named_dims_are_dynamic() -> None:
    spec = parse_input_spec("batch=1,1,height=224,width=224")
    assert spec.dims[0] == Dim(1, "batch")
    assert spec.dynamic_axes == {0: "batch", 2: "height", 3: "width"}
    assert str(spec) == "batch=1,1,height=224,width=224"


def test_int_dtype_with_range_samples_inside_it() -> None:
    spec = parse_input_spec("2,12:int64:0:100")
    assert (spec.dtype, spec.low, spec.high) == ("int64", 0, 100)
    sample = spec.sample(np.random.default_rng(0))
    assert sample.dtype == np.int64 and sample.shape == (2, 12)
    assert sample.min() >= 0 and sample.max() < 100


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("1,a,3", "bad dimension"),
        ("1,0,3", "at least 1"),
        ("1,3:float7", "unknown dtype"),
        ("1,3:float32:0:5", "integer dtype"),
        ("1,3:int64:5:5", "empty"),
        ("h=2,h=3", "twice"),
    ],
)
def test_bad_specs_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(UserError, match=fragment):
        parse_input_spec(text)


def test_dynamic_dim_sizes_must_agree_across_inputs() -> None:
    with pytest.raises(UserError, match="same size"):
        parse_input_specs(["batch=1,3", "batch=2,5:int64"])


def test_kwargs_are_python_literals() -> None:
    assert parse_kwargs(["a=3", "b=[1, 2]", "c=hello", "d=True"]) == {"a": 3, "b": [1, 2], "c": "hello", "d": True}
    with pytest.raises(UserError, match="key=value"):
        parse_kwargs(["novalue"])
