"""Package target: ExecuTorch: a .pte lowered to XNNPACK from the PyTorch module."""

from __future__ import annotations

from ferry.package.targets.base import BuildContext, Target, converting, write_readme


def build_executorch(ctx: BuildContext) -> list[str]:
    from ferry.convert.executorch import DYNAMIC_BOUND, delegated_ops, pte_from_module

    assert ctx.loaded is not None
    with converting("executorch", "torch.export and ExecuTorch's lowering"):
        lowered = pte_from_module(ctx.loaded.module, ctx.specs)
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
    write_readme(
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


TARGET = Target(
    "executorch",
    ".pte lowered to XNNPACK",
    "ExecuTorch",
    "executorch",
    "executorch",
    build_executorch,
    needs_module=True,
)
