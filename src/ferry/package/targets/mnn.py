"""Package target: MNN: a .mnn converted from the ONNX file."""

from __future__ import annotations

from ferry.package.targets.base import BuildContext, Target, converting, write_readme


def build_mnn(ctx: BuildContext) -> list[str]:
    from ferry.backends.mnn import WINOGRAD_LIMITED, WINOGRAD_MEMORY_LEVEL
    from ferry.convert.mnn import mnn_from_onnx

    with converting("mnn", "MNN's converter"):
        mnn_from_onnx(ctx.onnx_path, ctx.folder / "model.mnn")
    ctx.notes.append(
        f"Set the hint WINOGRAD_MEMORY_LEVEL ({WINOGRAD_MEMORY_LEVEL}) to {WINOGRAD_LIMITED} on the runtime"
        " manager to get fp32 results (ferry verified it so); MNN's default Winograd set differs by up to 1e-3."
    )
    inputs = ", ".join(f'"{s.name}"' for s in ctx.specs)
    outputs = ", ".join(f'"{n}"' for n in ctx.output_names)
    write_readme(
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


TARGET = Target("mnn", ".mnn for MNN's runtime (dynamic shapes)", "MNN", "mnn", "MNN", build_mnn)
