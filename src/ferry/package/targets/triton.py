"""Package target: a Triton Inference Server model repository (``NAME/config.pbtxt`` and
``NAME/1/model.onnx`` on Triton's ONNX Runtime backend).

Names and data types come from the graph; dynamic dims are -1. When every input and output has a
dynamic first axis, that axis is Triton's batch axis: ``max_batch_size`` is set, the dims listed
leave it out, and ``dynamic_batching`` lets Triton stack concurrent requests. ``ferry serve
--repository`` serves the same folder, so one artifact runs on Triton and on a laptop.
"""

from __future__ import annotations

import re
import shutil

from ferry.errors import UserError
from ferry.package.targets.base import BuildContext, Target, write_readme
from ferry.serve._repository import CONFIG_TYPES
from ferry.specs import TensorInfo

#: rows Triton may stack into one call (edit config.pbtxt to change it)
MAX_BATCH_SIZE = 8
#: Triton's default: a batch is what queued while the model ran; raise it to wait for bigger batches
MAX_QUEUE_DELAY_US = 0


def model_name(ctx: BuildContext) -> str:
    """The model's folder name: the zoo name, the class, or the ONNX file's stem."""
    source = ctx.loaded.source if ctx.loaded is not None else ctx.onnx_path.stem
    text = source[4:] if source.startswith("zoo:") else source.rsplit(":", 1)[-1]
    text = re.sub(r"[^A-Za-z0-9_.-]+", "_", text.removesuffix(".onnx")).strip("._-")
    return text or "model"


def _tensor(t: TensorInfo, batched: bool) -> list[str]:
    if t.dtype not in CONFIG_TYPES:
        raise UserError(f"tensor {t.name!r} has dtype {t.dtype}, which the triton target does not map")
    dims = ", ".join(str(d) if isinstance(d, int) else "-1" for d in (t.shape[1:] if batched else t.shape))
    return ["  {", f'    name: "{t.name}"', f"    data_type: {CONFIG_TYPES[t.dtype]}", f"    dims: [ {dims} ]", "  }"]


def config_pbtxt(name: str, inputs: tuple[TensorInfo, ...], outputs: tuple[TensorInfo, ...]) -> tuple[str, bool]:
    """Triton's ``config.pbtxt`` for an ONNX model, and whether it batches."""
    batched = all(t.shape and not isinstance(t.shape[0], int) for t in (*inputs, *outputs))
    lines = [f'name: "{name}"', 'backend: "onnxruntime"', f"max_batch_size: {MAX_BATCH_SIZE if batched else 0}"]
    for key, tensors in (("input", inputs), ("output", outputs)):
        body = [line for t in tensors for line in _tensor(t, batched)]
        lines += [f"{key} [", *_joined(body), "]"]
    if batched:
        lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}", "}"]
    return "\n".join(lines) + "\n", batched


def _joined(lines: list[str]) -> list[str]:
    """Tensor blocks separated by commas, as Triton's examples write them."""
    return [line + "," if line == "  }" and k < len(lines) - 1 else line for k, line in enumerate(lines)]


def build_triton(ctx: BuildContext) -> list[str]:
    from ferry import onnx_file

    name = model_name(ctx)
    proto = onnx_file.load(ctx.onnx_path, load_external_data=False)
    inputs, outputs = onnx_file.graph_io(proto)
    if proto.graph.initializer and any(t.data_location == 1 for t in proto.graph.initializer):
        raise UserError("the triton target copies one model.onnx: export without external data")
    text, batched = config_pbtxt(name, inputs, outputs)
    (ctx.folder / name / "1").mkdir(parents=True)
    shutil.copyfile(ctx.onnx_path, ctx.folder / name / "1" / "model.onnx")
    (ctx.folder / name / "config.pbtxt").write_text(text)
    ctx.extra["triton"] = {
        "model": name,
        "max_batch_size": MAX_BATCH_SIZE if batched else 0,
        "dynamic_batching": batched,
    }
    if batched:
        ctx.notes.append(
            f"axis 0 is Triton's batch axis: max_batch_size {MAX_BATCH_SIZE}, dynamic batching of the requests"
            f" that queue while the model runs (max_queue_delay_microseconds {MAX_QUEUE_DELAY_US}: raise it to wait"
            f" for bigger batches; edit {name}/config.pbtxt)"
        )
    else:
        ctx.notes.append("the first axis is static: max_batch_size 0, every request runs alone")
    ctx.notes.append("the other files here (manifest.json, README.md) are not model folders: Triton skips them")
    write_readme(
        ctx,
        "Triton Inference Server (model repository)",
        [
            f"# this folder is the repository; {name}/config.pbtxt, {name}/1/model.onnx",
            "docker run --rm -p 8000:8000 -v $PWD:/models nvcr.io/nvidia/tritonserver:<xx.yy>-py3 \\",
            "    tritonserver --model-repository=/models",
            "ferry serve --repository .          # the same repository on this machine, same protocol",
            "",
            "import tritonclient.http as httpclient",
            'client = httpclient.InferenceServerClient("localhost:8000")',
            f'inp = httpclient.InferInput("{inputs[0].name}", list(x.shape), "{CONFIG_TYPES[inputs[0].dtype][5:]}")',
            "inp.set_data_from_numpy(x)",
            f'out = client.infer("{name}", [inp]).as_numpy("{outputs[0].name}")',
        ],
    )
    return [f"{name}/config.pbtxt", f"{name}/1/model.onnx", "README.md"]


TARGET = Target(
    "triton",
    "a Triton Inference Server model repository (config.pbtxt + model.onnx)",
    "Triton Inference Server (onnxruntime backend)",
    "core",
    "onnxruntime",
    build_triton,
)
