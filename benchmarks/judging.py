"""The numbers behind verify's noise rule (docs/verify.md, "How outputs are judged").

For every model of the real-model suite (tests/realmodels) and the conformance suite
(tests/conformance), on ONNX Runtime and OpenVINO, this measures per float output

- ``ratio``: the runtime's error against PyTorch in float64 over PyTorch float32's own error
  (the noise rule passes up to ``NoiseRule.factor``, 10), and
- ``old``: whether the former fixed rule (|runtime - torch| <= 1e-5 + 1e-4 |torch|) passed it;

and, for a broken copy of each file (every output halved), the same ratio: how far above the bound
a real bug lands. Writes benchmarks/results/judging.json and prints a summary.

    .venv/bin/python benchmarks/judging.py            # a few minutes on 2 cores
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ferry  # noqa: E402
from ferry.backends import REGISTRY  # noqa: E402
from ferry.specs import parse_input_specs  # noqa: E402
from ferry.verify import VerifyConfig  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "judging.json"


def subjects() -> list[tuple[str, list[str]]]:
    """(source, specs) of every model of both suites, the deliberately failing one excepted."""
    from tests.conformance.models import CASES
    from tests.realmodels.models import MODELS

    real = [(f"{ROOT}/tests/realmodels/models.py:{n}", specs) for n, specs in MODELS.items()]
    conf = [(f"{ROOT}/tests/conformance/models.py:{n}", s) for n, (s, code) in CASES.items() if code == 0]
    return real + conf


def halved(path: Path, out: Path) -> Path:
    """A copy of the file whose float outputs are all multiplied by 0.5."""
    model = onnx.load(path)
    graph = model.graph
    graph.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), "ferry_half"))
    for output in graph.output:
        if output.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            continue
        inner = output.name + "_unhalved"
        for node in graph.node:
            node.output[:] = [inner if o == output.name else o for o in node.output]
        graph.node.append(helper.make_node("Mul", [inner, "ferry_half"], [output.name]))
    onnx.save(model, out)
    return out


def measure(source: str, path: Path, runtimes: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per runtime and float output, the noise rule's numbers and the old rule's verdict (the
    specs come from the file, as after ``ferry export``: a KV cache's inputs included)."""
    noise = ferry.verify(source, path, config=VerifyConfig(backends=runtimes, samples=2))
    old = ferry.verify(source, path, config=VerifyConfig(backends=runtimes, samples=2, judge="tolerance"))
    rows = []
    for name, verdict in noise.backends.items():
        fixed = old.backends[name].worst()
        for out, s in verdict.worst().items():
            if s.rule != "noise" or s.error_vs_float64 is None or s.torch_error is None:
                continue
            rows.append(
                {
                    "model": source.rsplit(":", 1)[1],
                    "runtime": name,
                    "output": out,
                    "error_vs_float64": s.error_vs_float64,
                    "torch_error": s.torch_error,
                    "ratio": s.error_vs_float64 / s.torch_error if s.torch_error else math.inf,
                    "within_bound": s.error_vs_float64 / s.allowed if s.allowed else math.inf,
                    "noise_pass": s.ok,
                    "old_pass": bool(fixed.get(out)) and bool(fixed[out].ok),
                }
            )
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ratios = [r["ratio"] for r in rows if math.isfinite(r["ratio"])]
    return {
        "outputs": len(rows),
        "noise_rule_failures": sum(not r["noise_pass"] for r in rows),
        "old_rule_failures": sum(not r["old_pass"] for r in rows),
        "ratio_median": statistics.median(ratios) if ratios else None,
        "ratio_p90": float(np.percentile(ratios, 90)) if ratios else None,
        "ratio_max": max(ratios) if ratios else None,
        "ratio_min": min(ratios) if ratios else None,
    }


def main() -> None:
    runtimes = tuple(b for b in ("onnxruntime", "openvino") if REGISTRY.get(b).available())
    faithful: list[dict[str, Any]] = []
    broken: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for source, specs in subjects():
            path = Path(tmp) / "model.onnx"
            try:
                ferry.export(source, path, inputs=parse_input_specs(specs))
                faithful += measure(source, path, runtimes)
                broken += measure(source, halved(path, Path(tmp) / "halved.onnx"), ("onnxruntime",))
            except ferry.FerryError as exc:
                print(f"{source}: {exc}", file=sys.stderr)
            print(f"{source.rsplit(':', 1)[1]}: {len(faithful)} outputs measured", file=sys.stderr, flush=True)
    result = {
        "runtimes": runtimes,
        "faithful": summary(faithful),
        "halved": summary(broken),
        "faithful_rows": faithful,
        "halved_rows": broken,
    }
    OUT.write_text(json.dumps(result, indent=1))
    print(json.dumps({"faithful": result["faithful"], "halved": result["halved"]}, indent=1))


if __name__ == "__main__":
    main()
