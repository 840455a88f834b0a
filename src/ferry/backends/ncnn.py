"""ncnn backend: the PyTorch module converted by pnnx (traced with TorchScript, fp32 weights) to
ncnn's ``.param`` + ``.bin`` and run by ncnn's CPU runtime, Tencent's inference engine for phones.

Like ExecuTorch and LiteRT it starts from the module. Height and width stay dynamic (pnnx is
given a second example shape); ncnn's tensors have no batch axis, so a batch runs image by image.
ferry's adapter takes ``N x C x H x W`` float32 inputs, the image models ncnn is made for.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ferry.backends.base import Backend, Session, TensorInfo, is_torch_module
from ferry.convert.ncnn import NcnnModel, ncnn_from_module, unsupported_inputs
from ferry.errors import UnsupportedModelError, UserError
from ferry.registry import installed_version
from ferry.specs import InputSpec

if TYPE_CHECKING:
    from ferry.subject import Subject


def _model_order(blobs: Sequence[str], prefix: str) -> list[str]:
    """Blobs in the model's order: pnnx names the k-th input ``in{k}`` and the k-th output
    ``out{k}``, and ncnn lists them in layer order (an output that feeds another layer can come
    first). Blobs named otherwise keep ncnn's order."""
    if not all(re.fullmatch(rf"{prefix}\d+", b) for b in blobs):
        return list(blobs)
    return sorted(blobs, key=lambda b: int(b[len(prefix) :]))


class NcnnSession(Session):
    backend = "ncnn"

    def __init__(
        self, model: NcnnModel, specs: Sequence[InputSpec], output_names: Sequence[str], *, threads: int = 0
    ) -> None:
        super().__init__()
        import ncnn

        self.model = model
        self._net = ncnn.Net()
        opt = self._net.opt
        opt.use_fp16_storage = opt.use_fp16_arithmetic = opt.use_fp16_packed = False  # fp32, as desktop
        opt.use_vulkan_compute = False
        # Winograd 3x3 convolutions differ from fp32 by up to 1.4e-4 on ESPCN; without, 1e-6.
        opt.use_winograd_convolution = False
        if threads:
            opt.num_threads = threads
        with tempfile.TemporaryDirectory(prefix="ferry-ncnn-") as tmp:
            param, weights = Path(tmp) / "model.param", Path(tmp) / "model.bin"
            param.write_text(model.param)
            weights.write_bytes(model.weights)
            if self._net.load_param(os.fspath(param)) != 0 or self._net.load_model(os.fspath(weights)) != 0:
                raise UnsupportedModelError("ncnn cannot load the converted model")
        self._in = _model_order(self._net.input_names(), "in")
        self._out = _model_order(self._net.output_names(), "out")
        if len(self._in) != len(specs):
            raise UserError(f"the ncnn model has {len(self._in)} input(s), the model {len(specs)}")
        names = list(output_names) or self._out
        if len(names) != len(self._out):
            raise UserError(f"the ncnn model has {len(self._out)} output(s), expected {len(names)}")
        self.inputs = tuple(
            TensorInfo(s.name, "float32", tuple(None if d.name else d.size for d in s.dims)) for s in specs
        )
        self.outputs = tuple(TensorInfo(n, "float32", ()) for n in names)
        self.settings = {
            "precision": "fp32",
            "fp16_storage": False,
            "winograd": False,
            "threads": threads or "default",
            "converter": "pnnx (TorchScript trace)",
            "ncnn_bytes": len(model.weights) + len(model.param.encode()),
        }
        self.artifact = ("model.ncnn.*", len(model.weights) + len(model.param.encode()))

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import ncnn

        batch = next(iter(feeds.values())).shape[0]
        results: list[list[np.ndarray]] = [[] for _ in self._out]
        for b in range(batch):  # ncnn's Mat has no batch axis
            ex = self._net.create_extractor()
            for blob, info in zip(self._in, self.inputs, strict=True):
                ex.input(blob, ncnn.Mat(np.ascontiguousarray(feeds[info.name][b])))
            for k, blob in enumerate(self._out):
                status, mat = ex.extract(blob)
                if status != 0:
                    raise UserError(f"ncnn failed to run the model (status {status} on {blob})")
                results[k].append(np.array(mat, copy=True))
        return {o.name: np.stack(r) for o, r in zip(self.outputs, results, strict=True)}


class NcnnBackend(Backend):
    """ncnn (fp32) from the PyTorch module, converted by pnnx."""

    name = "ncnn"
    artifact = "module"
    extra = "ncnn"

    def version(self) -> str | None:
        if installed_version("pnnx", "pnnx") is None:
            return None
        return installed_version("ncnn", "ncnn")

    def supports(self, subject: Subject) -> str | None:
        return super().supports(subject) or unsupported_inputs(subject.specs)

    def load(self, artifact: Any, **options: Any) -> NcnnSession:
        self.require()
        specs: Sequence[InputSpec] = options.get("inputs", ())
        outputs: Sequence[str] = options.get("outputs", ())
        threads = int(options.get("threads") or 0)
        if is_torch_module(artifact):
            return NcnnSession(ncnn_from_module(artifact, specs), specs, outputs, threads=threads)
        if isinstance(artifact, (str, os.PathLike)) and str(artifact).endswith(".param"):
            param = Path(artifact)
            model = NcnnModel(param.read_text(), param.with_suffix(".bin").read_bytes())
            return NcnnSession(model, specs, outputs, threads=threads)
        raise UserError("the ncnn backend takes a PyTorch module or a .param file (with its .bin beside it)")
