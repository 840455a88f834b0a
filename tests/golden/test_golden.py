"""Golden results: verify, bench, optimize and package on two tiny models and ``zoo:superres``.

They pin what each stage reports (verdicts, shapes, samples, steps, files, manifests, and the
numbers within a band wide enough for another CPU's rounding) so that moving code around is
provably behaviour-preserving. Timings are never pinned.

After an intended change of behaviour, regenerate the files and review the diff::

    FERRY_UPDATE_GOLDEN=1 pytest tests/golden
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ferry
from ferry.specs import parse_input_spec

HERE = Path(__file__).resolve().parent
TINY = HERE.parent / "tiny_models.py"
UPDATE = os.environ.get("FERRY_UPDATE_GOLDEN") == "1"

# Two tiny models built in code (one input; two inputs of two dtypes with a dict output) and the
# flagship zoo model.
SUBJECTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "tinyconv": (f"{TINY}:TinyConv", ("batch=2,3,height=16,width=16",)),
    "twoin": (f"{TINY}:TwoInTwoOut", ("batch=2,4", "batch=2,5:int64:0:10")),
    "superres": ("zoo:superres", ()),
}


def _num(value: float | None) -> dict[str, Any] | None:
    """A number kept as its value and its order of magnitude (what survives another CPU)."""
    if value is None:
        return None
    if value == 0 or not math.isfinite(value):
        return {"value": value, "decade": None}
    return {"value": value, "decade": math.floor(math.log10(abs(value)))}


def _same_number(want: Any, got: Any, where: str) -> None:
    if want is None or got is None:
        assert want == got, where
        return
    if want["decade"] is None or got["decade"] is None:
        # exact zero (or inf) on one side: the other must be tiny, or the same
        assert want["value"] == got["value"] or max(abs(want["value"]), abs(got["value"])) < 1e-6, where
        return
    assert abs(want["decade"] - got["decade"]) <= 1, f"{where}: {got['value']} vs golden {want['value']}"


def _compare(want: Any, got: Any, where: str = "") -> None:
    """Equal structure and values; dicts holding ``decade`` are numbers compared within a band."""
    if isinstance(want, dict) and set(want) == {"value", "decade"}:
        _same_number(want, got, where)
    elif isinstance(want, dict):
        assert isinstance(got, dict), where
        assert sorted(want) == sorted(got), f"{where}: keys {sorted(got)} vs golden {sorted(want)}"
        for k in want:
            _compare(want[k], got[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(want) == len(got), f"{where}: {got} vs golden {want}"
        for i, (a, b) in enumerate(zip(want, got, strict=True)):
            _compare(a, b, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-3, abs=1e-6), where
    else:
        assert want == got, f"{where}: {got!r} vs golden {want!r}"


def _check_golden(name: str, got: Any) -> None:
    path = HERE / f"{name}.json"
    got = json.loads(json.dumps(got))  # tuples -> lists, as stored
    if UPDATE or not path.is_file():
        if not UPDATE and os.environ.get("CI"):
            pytest.fail(f"{path.name} is missing; run FERRY_UPDATE_GOLDEN=1 pytest tests/golden and commit it")
        path.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    _compare(json.loads(path.read_text()), got, name)


def _specs(subject: str) -> list[Any] | None:
    texts = SUBJECTS[subject][1]
    return [parse_input_spec(t) for t in texts] or None


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    folder = tmp_path_factory.mktemp("golden")
    made: dict[str, Path] = {}

    def get(subject: str) -> Path:
        if subject not in made:
            path = folder / f"{subject}.onnx"
            ferry.export(SUBJECTS[subject][0], path, inputs=_specs(subject))
            made[subject] = path
        return made[subject]

    return get


def _verify_view(report: ferry.VerifyReport) -> dict[str, Any]:
    backends = {}
    for name, b in report.backends.items():
        d = b.to_dict()
        backends[name] = {
            "ok": d["ok"],
            "status": d["status"],
            "gating": d["gating"],
            "checks": d["checks"],
            "failed_checks": d["failed_checks"],
            "errors": d["errors"],
            "notes": d["notes"],
            "precision": d["settings"].get("precision"),
            "outputs": {
                out: {
                    "ok": s["ok"],
                    "shape": s.get("shape"),
                    "rtol": s.get("rtol"),
                    "atol": s.get("atol"),
                    "max_abs_diff": _num(s.get("max_abs_diff")),
                    "rule": s.get("rule"),
                    "error_vs_float64": _num(s.get("error_vs_float64")),
                    "torch_error": _num(s.get("torch_error")),
                }
                for out, s in d["outputs"].items()
            },
        }
    return {
        "ok": report.ok,
        "shapes": report.shapes,
        "samples": report.samples,
        "backends": backends,
        "rule": report.reference["rule"],
        "float64": report.reference["float64"],
        "first_divergence": report.first_divergence is not None,
    }


@pytest.mark.parametrize("subject", sorted(SUBJECTS))
def test_verify(subject: str, exported: Callable[[str], Path]) -> None:
    cfg = ferry.VerifyConfig(backends=("onnxruntime", "onnxruntime-noopt"))
    report = ferry.verify(SUBJECTS[subject][0], exported(subject), inputs=_specs(subject), config=cfg)
    _check_golden(f"verify_{subject}", _verify_view(report))


def test_verify_finds_a_wrong_file(exported: Callable[[str], Path]) -> None:
    """A file exported from the model in training mode must fail where it differs, localized."""
    cfg = ferry.VerifyConfig(backends=("onnxruntime",), samples=2)
    report = ferry.verify(f"{TINY}:TinyConv", _train_mode_file(exported), inputs=_specs("tinyconv"), config=cfg)
    view = _verify_view(report)
    div = report.first_divergence or {}
    view["divergence"] = {k: div.get(k) for k in ("stage", "node", "op_type", "module") if k in div}
    _check_golden("verify_wrong_file", view)


def _train_mode_file(exported: Callable[[str], Path]) -> Path:
    import torch

    from tests.tiny_models import TinyConv

    base = exported("tinyconv")
    path = base.with_name("tinyconv_other_weights.onnx")
    if not path.is_file():
        torch.manual_seed(1)  # other weights than the source's seeded ones
        ferry.export(ferry.load_model(TinyConv()), path, inputs=_specs("tinyconv"))
    return path


@pytest.mark.parametrize("subject", ["tinyconv", "superres"])
def test_bench(subject: str, exported: Callable[[str], Path]) -> None:
    cfg = ferry.BenchConfig(
        backends=("torch", "onnxruntime"), seconds=0.05, warmup=1, min_runs=2, max_runs=3, memory=False
    )
    report = ferry.bench(exported(subject), model=SUBJECTS[subject][0], config=cfg)
    view = {
        "ok": bool(report),
        "source": Path(report.source).name if subject != "superres" else report.source,
        "config": {k: v for k, v in report.config.items() if k not in ("seconds",)},
        "rows": [
            {
                "backend": r.backend,
                "precision": r.precision,
                "shape": r.shape,
                "batch": r.batch,
                "threads": r.threads,
                "runs_in_range": cfg.min_runs <= r.runs <= cfg.max_runs,
                "has_ratio": r.speedup_vs_eager is not None,
                "has_spread": {"p25", "p75", "iqr"} <= set(r.to_dict()["latency_ms"]),
                "error": r.error,
            }
            for r in report.rows
        ],
        # which fields say how busy the machine was (their values depend on the machine's load)
        "load": sorted(report.to_dict()["load"]),
    }
    _check_golden(f"bench_{subject}", view)


@pytest.mark.parametrize(("subject", "mode"), [("tinyconv", None), ("twoin", "fp16"), ("superres", "int8")])
def test_optimize(subject: str, mode: str | None, exported: Callable[[str], Path], tmp_path: Path) -> None:
    cfg = ferry.OptimizeConfig(quantize=mode, calibration_samples=8, force=True)
    result = ferry.optimize(exported(subject), tmp_path / "opt.onnx", cfg)
    d = result.to_dict()
    view = {
        "ok": d["ok"],
        "written": d["written"],
        "steps": d["steps"],
        "kept_float": d["kept_float"],
        "compared_on": d["compared_on"],
        "ops_after": d["ops_after"],
        "size_after": _num(d["size_after"]),
        "gate": {
            "metric": d["gate"]["metric"],
            "limit": d["gate"]["limit"],
            "passed": d["gate"]["passed"],
            "value": _num(abs(d["gate"]["value"])),
        },
        "outputs": [{"name": o["name"], "ok": o["ok"]} for o in d["outputs"]],
    }
    _check_golden(f"optimize_{subject}", view)


@pytest.mark.parametrize(("subject", "target"), [("tinyconv", "onnx"), ("twoin", "onnx"), ("superres", "ort-mobile")])
def test_package(subject: str, target: str, tmp_path: Path) -> None:
    result = ferry.package(SUBJECTS[subject][0], tmp_path / "pkg", target, inputs=_specs(subject))
    m = dict(result.manifest)
    view = {
        "files": sorted(result.files),
        "manifest_keys": sorted(m),
        "target": m["target"],
        "runtime": m["runtime"],
        "inputs": m["inputs"],
        "outputs": m["outputs"],
        "task": m["task"],
        "extra": {k: v for k, v in m.items() if k in ("required_operators", "static_shapes", "opset")},
    }
    _check_golden(f"package_{subject}_{target}", view)


def test_verify_on_photos(exported: Callable[[str], Path], tmp_path: Path) -> None:
    """The super-resolution task's photo comparison inside verify."""
    from ferry.superres import datasets

    datasets.chelsea().crop((100, 50, 196, 122)).save(tmp_path / "cat.png")
    cfg = ferry.VerifyConfig(backends=("onnxruntime",), samples=1, other_shapes=False)
    report = ferry.verify("zoo:superres", exported("superres"), config=cfg, photos=tmp_path)
    assert report.photos is not None
    photos = report.photos.to_dict()
    view = _verify_view(report) | {
        "photos": {
            "scale": photos["scale"],
            "photos": photos["photos"],
            "targets": [
                {
                    "backend": t["backend"],
                    "max_pixel_diff": t["max_pixel_diff"],
                    "psnr_vs_original": _num(t["psnr_vs_original_db"]),
                    "artifact": t["artifact"],
                }
                for t in photos["targets"]
            ],
        }
    }
    _check_golden("verify_photos_superres", view)


def test_rgb_io_export_and_verify(tmp_path: Path) -> None:
    """The in-graph RGB pipeline: export metadata and verify at the uint8 contract."""
    path = tmp_path / "rgb.onnx"
    result = ferry.export("zoo:superres", path, rgb_io=True)
    cfg = ferry.VerifyConfig(backends=("onnxruntime",), samples=1)
    report = ferry.verify("zoo:superres", path, config=cfg)
    view = _verify_view(report) | {
        "export": {k: v for k, v in result.to_dict().items() if k in ("inputs", "outputs", "dynamic")}
    }
    _check_golden("export_verify_rgb_io", view)
