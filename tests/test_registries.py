"""Registries say what they hold, refuse duplicates, and everything registered is exercised."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ferry
from ferry import zoo
from ferry.backends import REGISTRY, BackendRegistry
from ferry.backends.onnxruntime import OnnxRuntimeBackend
from ferry.errors import InternalError, UserError
from ferry.package.targets import TARGETS
from ferry.registry import Registry


def test_duplicate_backend_is_a_bug() -> None:
    reg = BackendRegistry()
    reg.register(OnnxRuntimeBackend())
    with pytest.raises(InternalError, match="twice"):
        reg.register(OnnxRuntimeBackend())


@pytest.mark.parametrize(
    ("registry", "kind"), [(REGISTRY, "backend"), (zoo.REGISTRY, "zoo model"), (TARGETS, "target")]
)
def test_registries_refuse_duplicates_and_list_known_names(registry: Registry[Any], kind: str) -> None:
    copy: Registry[Any] = Registry(kind)
    first = next(iter(registry))
    copy.register(first)
    with pytest.raises(InternalError, match=f"{kind} '{first.name}' is registered twice"):
        copy.register(first)
    assert first.name in registry and len(registry) == len(registry.names())
    with pytest.raises(UserError, match=f"unknown {kind} 'nope'; known: " + ", ".join(registry.names())):
        registry.get("nope")


def test_every_backend_reports_a_version_and_runs(superres_onnx: Path) -> None:
    model = ferry.load_model("zoo:superres")
    x = np.random.default_rng(0).random((1, 1, 16, 16), dtype=np.float32)
    for name in REGISTRY.names():
        backend = REGISTRY.get(name)
        if not backend.info().available and not os.environ.get("CI"):
            # CI installs every runtime (.ci/run); elsewhere a system one (Chromium) may be absent.
            assert backend.info().reason, name
            continue
        assert backend.info().available, f"{name}: {backend.info().reason}"
        artifact = model.module if backend.artifact == "torch" else str(superres_onnx)
        from ferry.backends.base import TensorInfo

        if backend.artifact == "torch":
            info = [TensorInfo("input", "float32", (None, 1, None, None))]
            sess = backend.load(artifact, inputs=info, outputs=["output"])
        elif backend.artifact == "module":  # lowered from the PyTorch module (ExecuTorch)
            specs = [ferry.parse_input_spec("batch=1,1,height=16,width=16").with_name("input")]
            sess = backend.load(model.module, inputs=specs, outputs=["output"])
        else:
            sess = backend.load(artifact)
        assert sess.run({"input": x}).outputs["output"].shape == (1, 1, 48, 48), name


@pytest.mark.parametrize("name", zoo.names())
def test_every_zoo_model_exports_and_verifies(tmp_path: Path, name: str) -> None:
    entry = zoo.get(name)
    # Small shapes keep this fast; alexnet needs its full 224x224 input.
    small = {
        "superres": ["batch=1,1,height=32,width=32"],
        "superres_x2": ["batch=1,1,height=32,width=32"],
        "superres_x4": ["batch=1,1,height=32,width=32"],
        "superres_edsr": ["batch=1,1,height=32,width=32"],
        "superres_span": ["batch=1,1,height=32,width=32"],
        "superres_span_x2": ["batch=1,1,height=32,width=32"],
        "superres_span_x4": ["batch=1,1,height=32,width=32"],
        "srresnet": ["batch=1,3,height=16,width=16"],
    }
    specs = ferry.specs.parse_input_specs(small[name]) if name in small else None
    out = tmp_path / f"{name}.onnx"
    ferry.export(f"zoo:{name}", out, inputs=specs)
    assert ferry.check(out)
    report = ferry.verify(f"zoo:{name}", out, inputs=specs, config=ferry.VerifyConfig(samples=1))
    assert report.ok, report.to_dict()["backends"]
    assert entry.trained == name.startswith("superres")


def test_core_imports_without_optional_packages() -> None:
    """`import ferry` and an export/run work with the optional packages blocked from import."""
    code = (
        "import sys\n"
        "for mod in ('netron', 'sporco', 'openvino', 'executorch', 'av'):\n"
        "    sys.modules[mod] = None\n"
        "import ferry, tempfile, os\n"
        "d = tempfile.mkdtemp()\n"
        "p = os.path.join(d, 'sr.onnx')\n"
        "ferry.export('zoo:superres', p, inputs=[ferry.parse_input_spec('1,1,8,8')])\n"
        "print(ferry.run(p).outputs['output'].shape)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "(1, 1, 24, 24)" in res.stdout


def test_missing_optional_runtime_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    from ferry.superres import datasets

    monkeypatch.setitem(sys.modules, "sporco", None)
    with pytest.raises(UserError, match=r"pip install 'ferry\[train\]'"):
        datasets.validation_images()


def test_missing_runtime_is_skipped_by_all_and_explained_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert "openvino" not in REGISTRY.installed()
    assert {b.name for b in REGISTRY.resolve(["all"])} >= {"onnxruntime", "reference"}
    with pytest.raises(UserError, match=r"openvino is not installed: pip install 'ferry\[openvino\]'"):
        REGISTRY.resolve(["openvino"])


def test_the_names_known_without_importing_match_the_registries() -> None:
    """``--help`` lists backends and targets from static tuples (no runtime imported for it)."""
    from ferry import backends
    from ferry.package import targets

    assert sorted(backends.NAMES) == backends.REGISTRY.names()
    assert sorted(targets.NAMES) == targets.TARGETS.names()


def test_the_training_choices_known_without_torch_match_the_trainer() -> None:
    from ferry.superres import config, datasets, train

    assert tuple(train.ARCHITECTURES) == config.ARCHITECTURE_NAMES
    assert tuple(train.LOSSES) == config.LOSS_NAMES
    assert config.DATA_SET_NAMES == datasets.DATA_SETS
