"""``ferry package``: one model, packaged for a deployment target, with a manifest an app can read.

Each target is one function that writes the runtime's artifact into a folder and a short README
for the app developer; :func:`package` adds ``manifest.json`` (inputs and outputs with shapes,
dtypes and dynamic axes, pre/post-processing, the source model's hash, ferry's version, every
file with its size and hash) and writes the folder atomically (a temporary folder renamed into
place), so a failed run never leaves half a package.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferry.cache import sha256_file
from ferry.errors import InternalError, MissingDependencyError, UserError
from ferry.models import LoadedModel
from ferry.specs import InputSpec


@dataclass
class BuildContext:
    """What a target's builder gets: the model, its ONNX export and the folder to write into."""

    onnx_path: Path
    loaded: LoadedModel | None
    specs: tuple[InputSpec, ...]
    output_names: tuple[str, ...]
    task: dict[str, Any]
    folder: Path
    notes: list[str] = field(default_factory=list)
    #: extra manifest entries a target adds (e.g. the operators an ORT build must include)
    extra: dict[str, Any] = field(default_factory=dict)
    #: the runtime's version when it is not the Python package the target imports (npm packages)
    runtime_version: str = ""


@dataclass(frozen=True)
class Target:
    """A deployment target: its name, runtime, the pip extra that installs its converter, and the
    function that writes the package. ``module`` targets start from the PyTorch module rather
    than from the ONNX file."""

    name: str
    summary: str
    runtime: str
    extra: str
    module: str
    build: Callable[[BuildContext], list[str]]
    needs_module: bool = False

    def available(self) -> bool:
        return _importable(self.module)


def _importable(module: str) -> bool:
    import importlib.util
    import sys

    if module in sys.modules and sys.modules[module] is None:
        return False
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class TargetRegistry:
    """Name -> Target; duplicates are a bug, unknown names list the known ones."""

    def __init__(self) -> None:
        self._targets: dict[str, Target] = {}

    def register(self, target: Target) -> None:
        if target.name in self._targets:
            raise InternalError(f"target {target.name!r} is registered twice")
        self._targets[target.name] = target

    def get(self, name: str) -> Target:
        try:
            return self._targets[name]
        except KeyError:
            raise UserError(f"unknown target {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._targets)


@dataclass
class PackageResult:
    """A written package; truthy when it was written."""

    target: str
    folder: Path
    files: dict[str, int]
    manifest: dict[str, Any]
    seconds: float

    def __bool__(self) -> bool:
        return bool(self.files)

    @property
    def size_bytes(self) -> int:
        return sum(self.files.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "folder": str(self.folder),
            "files": self.files,
            "size_bytes": self.size_bytes,
            "seconds": self.seconds,
            "manifest": self.manifest,
        }


# --- targets -----------------------------------------------------------------------------------


def _build_onnx(ctx: BuildContext) -> list[str]:
    shutil.copyfile(ctx.onnx_path, ctx.folder / "model.onnx")
    _readme(
        ctx,
        "ONNX Runtime (desktop, server, Android/iOS full builds)",
        [
            "import onnxruntime as ort",
            'session = ort.InferenceSession("model.onnx")',
            "outputs = session.run(None, {" + ", ".join(f'"{s.name}": {s.name}_array' for s in ctx.specs) + "})",
        ],
    )
    return ["model.onnx", "README.md"]


def ort_format(onnx_path: Path, folder: Path) -> tuple[Path, Path]:
    """Convert an ONNX file to the ORT format with ONNX Runtime's own tool (optimizations fixed
    for ARM, operator types reduced); returns the ``.ort`` file and the operator config."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    work = folder / "ort-work"
    work.mkdir(parents=True, exist_ok=True)
    src = work / "model.onnx"
    shutil.copyfile(onnx_path, src)
    out = work / "out"
    _quietly(
        lambda: convert_onnx_models_to_ort(
            src,
            out,
            optimization_styles=[OptimizationStyle.Fixed],
            target_platform="arm",  # phones; the optimized graph stays portable to x86
            enable_type_reduction=True,
        )
    )
    ort_files = list(out.glob("*.ort"))
    configs = list(out.glob("*.config"))
    if not ort_files or not configs:
        raise UserError("ONNX Runtime could not convert the model to the ORT format")
    return ort_files[0], configs[0]


def _build_ort_mobile(ctx: BuildContext) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="ferry-ort-") as tmp:
        ort_file, config = ort_format(ctx.onnx_path, Path(tmp))
        shutil.copyfile(ort_file, ctx.folder / "model.ort")
        shutil.copyfile(config, ctx.folder / "required_operators_and_types.config")
    ops = [
        line.split(";")[2].split("{")[0]
        for line in (ctx.folder / "required_operators_and_types.config").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    ctx.extra["required_operators"] = ops
    ctx.notes.append(
        "Build a minimal ONNX Runtime with exactly these operators:"
        " `python tools/ci_build/build.py --minimal_build --include_ops_by_config"
        " required_operators_and_types.config ...` (onnxruntime repository)."
    )
    _readme(
        ctx,
        "ONNX Runtime Mobile (ORT format)",
        [
            "// Kotlin (com.microsoft.onnxruntime:onnxruntime-android)",
            "val env = OrtEnvironment.getEnvironment()",
            'val session = env.createSession(assets.open("model.ort").readBytes())',
            "// Swift (onnxruntime-objc): try ORTSession(env: env, modelPath: path, sessionOptions: nil)",
        ],
    )
    return ["model.ort", "required_operators_and_types.config", "README.md"]


def _build_openvino(ctx: BuildContext) -> list[str]:
    import openvino as ov

    try:
        model = ov.convert_model(os.fspath(ctx.onnx_path))
        # fp32 weights: the IR computes what the ONNX file does (OpenVINO picks bf16 at run time
        # on CPUs that have it unless INFERENCE_PRECISION_HINT is f32).
        ov.save_model(model, os.fspath(ctx.folder / "model.xml"), compress_to_fp16=False)
    except RuntimeError as exc:
        raise UserError(f"OpenVINO cannot convert the model: {' '.join(str(exc).split())[:300]}") from exc
    _readme(
        ctx,
        "OpenVINO IR",
        [
            "import openvino as ov",
            'compiled = ov.Core().compile_model("model.xml", "CPU", {"INFERENCE_PRECISION_HINT": "f32"})',
            "outputs = compiled(inputs)",
        ],
    )
    return ["model.xml", "model.bin", "README.md"]


def _build_executorch(ctx: BuildContext) -> list[str]:
    from ferry.backends.executorch import DYNAMIC_BOUND, delegated_ops, lower

    assert ctx.loaded is not None
    lowered = lower(ctx.loaded.module, ctx.specs)
    (ctx.folder / "model.pte").write_bytes(lowered.program)
    ops = delegated_ops(lowered.program)
    fixed = [
        f"{s.name}[{a}]"
        for s, dyn in zip(ctx.specs, lowered.dynamic, strict=True)
        for a, d in enumerate(s.dims)
        if d.name and a not in dyn
    ]
    if fixed:
        ctx.notes.append(f"torch.export fixed these dims to the example size: {', '.join(fixed)}")
    ctx.extra["dynamic_axes_in_program"] = [sorted(d) for d in lowered.dynamic]
    ctx.extra["xnnpack_delegate_calls"] = ops.pop("delegate_calls", 0)
    ctx.extra["portable_operators"] = sorted(ops)
    if any(lowered.dynamic):
        ctx.notes.append(
            f"Dynamic dims accept up to {DYNAMIC_BOUND}x the example size given at packaging; memory is planned"
            " for that bound."
        )
    _readme(
        ctx,
        "ExecuTorch (XNNPACK delegate)",
        [
            "// C++ (executorch/extension/module)",
            'executorch::extension::Module module("model.pte");',
            "auto outputs = module.forward(executorch::extension::from_blob(data, {"
            + ", ".join(map(str, ctx.specs[0].shape))
            + "}));",
        ],
    )
    return ["model.pte", "README.md"]


def _build_litert(ctx: BuildContext) -> list[str]:
    from dataclasses import replace

    from ferry.backends.litert import convert
    from ferry.specs import Dim

    assert ctx.loaded is not None
    (ctx.folder / "model.tflite").write_bytes(convert(ctx.loaded.module, ctx.specs))
    dynamic = [f"{s.name}[{a}]" for s in ctx.specs for a in s.dynamic_axes]
    # The flatbuffer has static shapes: the manifest must not promise dynamic axes.
    ctx.specs = tuple(replace(s, dims=tuple(Dim(d.size) for d in s.dims)) for s in ctx.specs)
    if dynamic:
        ctx.notes.append(
            f"LiteRT programs have static shapes: {', '.join(dynamic)} are fixed at"
            f" {'; '.join(f'{s.name} {list(s.shape)}' for s in ctx.specs)}."
            " Package again with --input for another size (or tile the image to this size)."
        )
    ctx.extra["static_shapes"] = True
    _readme(
        ctx,
        "LiteRT (TensorFlow Lite)",
        [
            "// Kotlin (com.google.ai.edge.litert:litert)",
            'val interpreter = Interpreter(FileUtil.loadMappedFile(context, "model.tflite"))',
            "interpreter.run(inputBuffer, outputBuffer)",
            "# Python (ai-edge-litert)",
            'interpreter = Interpreter(model_path="model.tflite"); interpreter.allocate_tensors()',
        ],
    )
    return ["model.tflite", "README.md"]


def _build_mnn(ctx: BuildContext) -> list[str]:
    from ferry.backends.mnn import WINOGRAD_LIMITED, WINOGRAD_MEMORY_LEVEL, convert

    convert(ctx.onnx_path, ctx.folder / "model.mnn")
    ctx.notes.append(
        f"Set the hint WINOGRAD_MEMORY_LEVEL ({WINOGRAD_MEMORY_LEVEL}) to {WINOGRAD_LIMITED} on the runtime"
        " manager to get fp32 results (ferry verified it so); MNN's default Winograd set differs by up to 1e-3."
    )
    inputs = ", ".join(f'"{s.name}"' for s in ctx.specs)
    outputs = ", ".join(f'"{n}"' for n in ctx.output_names)
    _readme(
        ctx,
        "MNN",
        [
            "// C++ (MNN/expr/Module.hpp)",
            "std::shared_ptr<Executor::RuntimeManager> rt(Executor::RuntimeManager::createRuntimeManager(config));",
            f"rt->setHint(Interpreter::WINOGRAD_MEMORY_LEVEL, {WINOGRAD_LIMITED});",
            f'std::shared_ptr<Module> net(Module::load({{{inputs}}}, {{{outputs}}}, "model.mnn", rt));',
            "auto outputs = net->onForward({input});",
        ],
    )
    return ["model.mnn", "README.md"]


def _build_ncnn(ctx: BuildContext) -> list[str]:
    from ferry.backends.ncnn import convert

    assert ctx.loaded is not None
    model = convert(ctx.loaded.module, ctx.specs)
    (ctx.folder / "model.ncnn.param").write_text(model.param)
    (ctx.folder / "model.ncnn.bin").write_bytes(model.weights)
    ctx.extra["blobs"] = {"inputs": [f"in{k}" for k in range(len(ctx.specs))], "outputs": "out0, out1, ..."}
    ctx.notes.append(
        "Blobs are named in0, in1... and out0, out1... in the order of the model's inputs and outputs;"
        " ncnn tensors have no batch axis: run one image per extractor."
    )
    ctx.notes.append(
        "ferry verified it with fp16 storage/arithmetic and Winograd convolutions off (fp32 results);"
        " on phones fp16 is faster and differs by about 5e-5."
    )
    _readme(
        ctx,
        "ncnn",
        [
            "// C++ (ncnn/net.h)",
            "ncnn::Net net; net.opt.use_fp16_storage = false; net.opt.use_winograd_convolution = false;",
            'net.load_param("model.ncnn.param"); net.load_model("model.ncnn.bin");',
            'ncnn::Extractor ex = net.create_extractor(); ex.input("in0", image); ex.extract("out0", result);',
        ],
    )
    return ["model.ncnn.param", "model.ncnn.bin", "README.md"]


def _build_web(ctx: BuildContext) -> list[str]:
    from importlib import resources

    from ferry import web
    from ferry.export import export, read_metadata
    from ferry.models import RGB_IO, named_inputs, rgb_io_model
    from ferry.run import load_onnx

    dist = web.ort_web_dist()
    if dist is None:
        raise MissingDependencyError(f"the web target: {web.ORT_WEB_HINT}")
    model_path = ctx.folder / "model.onnx"
    if ctx.task.get("io") == RGB_IO:
        shutil.copyfile(ctx.onnx_path, model_path)
    elif ctx.loaded is not None and ctx.task.get("kind") == "super-resolution":
        # The page hands the model the picked image's RGB bytes: the colour conversion, the
        # network and the chroma resize ship inside the graph, none of it is rewritten in JS.
        rgb = rgb_io_model(ctx.loaded)
        export(rgb, model_path)
        ctx.specs = named_inputs(rgb, rgb.inputs)
        ctx.task = dict(read_metadata(load_onnx(model_path, load_external_data=False)).get("task") or rgb.task)
        ctx.output_names = tuple(rgb.outputs)
    else:
        raise UserError(
            "the web target builds an upscaling page: give a Y-channel super-resolution model (zoo:superres...)"
            " or an ONNX file exported with --rgb-io"
        )
    files = web.copy_runtime(dist, ctx.folder)
    page = resources.files("ferry") / "assets" / "web"
    for name in ("index.html", "app.js"):
        (ctx.folder / name).write_text(page.joinpath(name).read_text(encoding="utf-8"), encoding="utf-8")
    ctx.runtime_version = web.ort_web_version(dist)
    ctx.notes.append(
        "Serve the folder over HTTP (any static server; `python -m http.server` works) and open index.html:"
        " browsers do not run WebAssembly from file:// pages. Nothing is fetched from a CDN."
    )
    ctx.notes.append(
        "With Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp headers,"
        " ONNX Runtime Web uses several threads; without them it runs on one."
    )
    _readme(
        ctx,
        "ONNX Runtime Web (WebAssembly)",
        [
            '<script src="ort.wasm.min.js"></script>',
            "ort.env.wasm.wasmPaths = './';",
            "const session = await ort.InferenceSession.create('model.onnx', {executionProviders: ['wasm']});",
            "const rgb = new ort.Tensor('uint8', rgbBytes, [height, width, 3]);",
            "const { upscaled } = await session.run({ rgb });  // uint8 [scale*height, scale*width, 3]",
        ],
    )
    return ["model.onnx", *files, "index.html", "app.js", "README.md"]


def _readme(ctx: BuildContext, runtime: str, snippet: Sequence[str]) -> None:
    io_lines = [
        f"- input `{s.name}`: {s.dtype} [{', '.join(d.name or str(d.size) for d in s.dims)}]" for s in ctx.specs
    ] + [f"- output `{n}`" for n in ctx.output_names]
    task = ctx.task
    pre = []
    if task:
        pre.append(f"- task: {task.get('kind', '?')}" + (f", x{task['scale']}" if "scale" in task else ""))
        if task.get("colour"):
            pre.append(f"- pixels: {task['colour']}")
        if task.get("input_layout"):
            pre.append(f"- layout: in {task['input_layout']}, out {task.get('output_layout', '?')}")
    text = "\n".join(
        [
            f"# {runtime} package",
            "",
            "Made by `ferry package`. `manifest.json` lists the inputs, outputs, pre/post-processing and",
            "the hash of every file.",
            "",
            "## Inputs and outputs",
            *io_lines,
            "(named dims are dynamic)",
            *(["", "## Pre/post-processing", *pre] if pre else []),
            "",
            "## Use",
            "```",
            *snippet,
            "```",
            *(["", "## Notes", *[f"- {n}" for n in ctx.notes]] if ctx.notes else []),
            "",
        ]
    )
    (ctx.folder / "README.md").write_text(text)


def _quietly(fn: Callable[[], object]) -> None:
    import contextlib
    import io
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            fn()
    finally:
        logging.disable(previous)


def _build_registry() -> TargetRegistry:
    reg = TargetRegistry()
    reg.register(Target("onnx", "the ONNX file itself", "ONNX Runtime", "core", "onnxruntime", _build_onnx))
    reg.register(
        Target(
            "ort-mobile",
            ".ort file + the operator config for a minimal ONNX Runtime build",
            "ONNX Runtime Mobile",
            "core",
            "onnxruntime",
            _build_ort_mobile,
        )
    )
    reg.register(Target("openvino", "OpenVINO IR (.xml + .bin)", "OpenVINO", "openvino", "openvino", _build_openvino))
    reg.register(
        Target(
            "executorch",
            ".pte lowered to XNNPACK",
            "ExecuTorch",
            "executorch",
            "executorch",
            _build_executorch,
            needs_module=True,
        )
    )
    reg.register(
        Target(
            "litert",
            ".tflite converted by litert-torch (static shapes)",
            "LiteRT",
            "litert",
            "litert_torch",
            _build_litert,
            needs_module=True,
        )
    )
    reg.register(Target("mnn", ".mnn for MNN's runtime (dynamic shapes)", "MNN", "mnn", "MNN", _build_mnn))
    reg.register(
        Target(
            "ncnn",
            ".param + .bin converted by pnnx (fp32 weights, dynamic H and W)",
            "ncnn",
            "ncnn",
            "pnnx",
            _build_ncnn,
            needs_module=True,
        )
    )
    reg.register(
        Target(
            "web",
            "static page: uint8 RGB model + ONNX Runtime Web (wasm) + index.html, offline",
            "ONNX Runtime Web",
            "web",
            "onnx",
            _build_web,
        )
    )
    return reg


TARGETS = _build_registry()


# --- the stage -----------------------------------------------------------------------------------


def package(
    model: str | os.PathLike[str] | LoadedModel,
    folder: str | os.PathLike[str],
    target: str,
    *,
    inputs: Sequence[InputSpec] | None = None,
    args: Mapping[str, Any] | None = None,
    weights: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> PackageResult:
    """Package a model for a target into ``folder`` (created; replaced only with ``overwrite``).

    Args:
        model: a model source (``zoo:NAME``, ``file.py:Attr``...) or, for targets that start
            from ONNX, an ``.onnx`` file exported by ferry.
        folder: the package folder to write.
        target: a name from :data:`TARGETS` (``ferry package --help`` lists them).
        inputs: input specs (named dims are dynamic); default: the model's declared ones.

    Raises:
        UserError: unknown target, a model the target cannot take (with the reason), an existing
            folder without ``overwrite``.
        MissingDependencyError: the target's converter is not installed.
    """
    from ferry.export import export, read_metadata
    from ferry.models import load_model, named_inputs
    from ferry.run import load_onnx, stored_specs

    start = time.perf_counter()
    spec = TARGETS.get(target)
    if not spec.available():
        raise MissingDependencyError(f"the {target} target needs {spec.runtime}: pip install 'ferry[{spec.extra}]'")
    out = Path(folder)
    if out.exists() and (out.is_file() or any(out.iterdir())) and not overwrite:
        raise UserError(f"{out} exists and is not empty; give another folder or --overwrite")
    is_file = not isinstance(model, LoadedModel) and str(model).lower().endswith(".onnx")
    if is_file and spec.needs_module:
        raise UserError(f"the {target} target starts from the PyTorch model; give zoo:NAME or file.py:Attr")
    with tempfile.TemporaryDirectory(prefix="ferry-package-") as tmp:
        loaded: LoadedModel | None = None
        if is_file:
            onnx_path = Path(model)  # type: ignore[arg-type]
            if not onnx_path.is_file():
                raise UserError(f"ONNX file not found: {onnx_path}")
            source = str(onnx_path)
        else:
            loaded = model if isinstance(model, LoadedModel) else load_model(str(model), args=args, weights=weights)
            onnx_path = Path(tmp) / "model.onnx"
            export(loaded, onnx_path, inputs=inputs)
            source = loaded.source
        proto = load_onnx(onnx_path, load_external_data=False)
        meta = read_metadata(proto)
        specs = tuple(inputs or ()) or (named_inputs(loaded, loaded.inputs) if loaded and loaded.inputs else ())
        specs = specs or stored_specs(proto)
        if not specs:
            raise UserError("no input shapes known; give --input specs")
        names = [i.name for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
        specs = tuple(s.with_name(n) for s, n in zip(specs, names, strict=False))
        outputs = tuple(o.name for o in proto.graph.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            ctx = BuildContext(onnx_path, loaded, specs, outputs, dict(meta.get("task") or {}), staging)
            written = spec.build(ctx)
            files = {name: (staging / name).stat().st_size for name in written}
            manifest = _manifest(spec, ctx, source, onnx_path, written)
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            files["manifest.json"] = (staging / "manifest.json").stat().st_size
            if out.is_dir():
                shutil.rmtree(out)
            elif out.exists():
                out.unlink()
            os.replace(staging, out)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return PackageResult(target, out, files, manifest, time.perf_counter() - start)


def _manifest(spec: Target, ctx: BuildContext, source: str, onnx_path: Path, written: Sequence[str]) -> dict[str, Any]:
    from ferry._version import __version__
    from ferry.backends.base import installed_version

    return {
        "format": "ferry-package/1",
        "target": spec.name,
        "runtime": spec.runtime,
        "runtime_version": ctx.runtime_version or installed_version(spec.module, spec.module) or "",
        "ferry_version": __version__,
        "source": source,
        "source_onnx_sha256": sha256_file(onnx_path),
        "inputs": [
            {
                "name": s.name,
                "dtype": s.dtype,
                "shape": list(s.shape),
                "dynamic_axes": {str(a): n for a, n in s.dynamic_axes.items()},
            }
            for s in ctx.specs
        ],
        "outputs": list(ctx.output_names),
        "task": ctx.task,
        "files": {
            name: {"bytes": (ctx.folder / name).stat().st_size, "sha256": sha256_file(ctx.folder / name)}
            for name in written
        },
        **ctx.extra,
    }
