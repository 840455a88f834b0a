"""Package target: ncnn: .param + .bin converted from the PyTorch module by pnnx."""

from __future__ import annotations

from ferry.package.targets.base import BuildContext, Target, converting, write_readme


def build_ncnn(ctx: BuildContext) -> list[str]:
    from ferry.convert.ncnn import ncnn_from_module

    assert ctx.loaded is not None
    with converting("ncnn", "pnnx"):
        model = ncnn_from_module(ctx.loaded.module, ctx.specs)
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
    write_readme(
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


TARGET = Target(
    "ncnn",
    ".param + .bin converted by pnnx (fp32 weights, dynamic H and W)",
    "ncnn",
    "ncnn",
    "pnnx",
    build_ncnn,
    needs_module=True,
)
