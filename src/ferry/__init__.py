"""ferry: take a PyTorch model to deployment and prove, with numbers, that it still works there.

The public API; every CLI command is a thin layer over one of these functions::

    import ferry
    result = ferry.export("zoo:superres", "sr.onnx")
    assert ferry.check("sr.onnx")
    report = ferry.verify("zoo:superres", "sr.onnx")

Names are imported on first use (PEP 562), so ``import ferry`` and ``ferry --version`` do not
pay for torch, onnx and the runtimes until a stage needs them.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from ferry._version import __version__
from ferry.errors import FerryError, InternalError, MissingDependencyError, UserError, VerificationError

#: public name -> (module, attribute in it)
_LAZY: dict[str, tuple[str, str]] = {
    "BenchConfig": ("ferry.bench", "BenchConfig"),
    "BenchReport": ("ferry.bench", "BenchReport"),
    "bench": ("ferry.bench", "bench"),
    "CheckResult": ("ferry.check", "CheckResult"),
    "check": ("ferry.check", "check"),
    "OutputStats": ("ferry.compare", "OutputStats"),
    "Tolerance": ("ferry.compare", "Tolerance"),
    "compare_outputs": ("ferry.compare", "compare_outputs"),
    "DemoResult": ("ferry.superres.demo", "DemoResult"),
    "run_demo": ("ferry.superres.demo", "run_demo"),
    "eval_superres": ("ferry.superres.evaluate", "evaluate_superres"),
    "ExportConfig": ("ferry.export", "ExportConfig"),
    "ExportResult": ("ferry.export", "ExportResult"),
    "export": ("ferry.export", "export"),
    "ModelInfo": ("ferry.inspect_", "ModelInfo"),
    "inspect_model": ("ferry.inspect_", "inspect_model"),
    "LoadedModel": ("ferry.models", "LoadedModel"),
    "load_model": ("ferry.models", "load_model"),
    "load_state_dict": ("ferry.weights", "load_state_dict"),
    "OptimizeConfig": ("ferry.optimize", "OptimizeConfig"),
    "OptimizeResult": ("ferry.optimize", "OptimizeResult"),
    "optimize": ("ferry.optimize", "optimize"),
    "PackageResult": ("ferry.package", "PackageResult"),
    "package": ("ferry.package", "package"),
    "RunResult": ("ferry.run", "RunResult"),
    "run": ("ferry.run", "run"),
    "ServeConfig": ("ferry.serve", "ServeConfig"),
    "serve": ("ferry.serve", "serve"),
    "serve_on_ray": ("ferry.serve._ray", "serve_on_ray"),
    "InputSpec": ("ferry.specs", "InputSpec"),
    "parse_input_spec": ("ferry.specs", "parse_input_spec"),
    "evaluate_superres": ("ferry.superres.scoring", "evaluate"),
    "super_resolve": ("ferry.superres.pipeline", "super_resolve"),
    "TrainConfig": ("ferry.superres.train", "TrainConfig"),
    "TrainResult": ("ferry.superres.train", "TrainResult"),
    "train_superres": ("ferry.superres.train", "train_superres"),
    "UpscaleConfig": ("ferry.superres.upscale", "UpscaleConfig"),
    "UpscaleResult": ("ferry.superres.upscale", "UpscaleResult"),
    "upscale": ("ferry.superres.upscale", "upscale"),
    "upscale_on_ray": ("ferry.superres.distributed", "upscale_on_ray"),
    "VerifyConfig": ("ferry.verify", "VerifyConfig"),
    "VerifyReport": ("ferry.verify", "VerifyReport"),
    "verify": ("ferry.verify", "verify"),
    "view": ("ferry.view", "view"),
}

#: Submodules reachable as attributes (``ferry.zoo.names()``), also imported on first use.
_SUBMODULES = ("zoo", "tasks", "backends", "superres", "samples", "onnx_file", "subject")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"ferry.{name}")
    raise AttributeError(f"module 'ferry' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBMODULES})


class _PublicApi(types.ModuleType):
    """Importing a stage module (``ferry.export``) binds it on this package under the name of the
    stage's function; the public name stays the function (``ferry.export(...)``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _PublicApi


if TYPE_CHECKING:  # what the names are, for type checkers and IDEs
    from ferry.bench import BenchConfig, BenchReport, bench
    from ferry.check import CheckResult, check
    from ferry.compare import OutputStats, Tolerance, compare_outputs
    from ferry.export import ExportConfig, ExportResult, export
    from ferry.inspect_ import ModelInfo, inspect_model
    from ferry.models import LoadedModel, load_model
    from ferry.optimize import OptimizeConfig, OptimizeResult, optimize
    from ferry.package import PackageResult, package
    from ferry.run import RunResult, run
    from ferry.serve import ServeConfig, serve
    from ferry.serve._ray import serve_on_ray
    from ferry.specs import InputSpec, parse_input_spec
    from ferry.superres.demo import DemoResult, run_demo
    from ferry.superres.distributed import upscale_on_ray
    from ferry.superres.evaluate import evaluate_superres as eval_superres
    from ferry.superres.pipeline import super_resolve
    from ferry.superres.scoring import evaluate as evaluate_superres
    from ferry.superres.train import TrainConfig, TrainResult, train_superres
    from ferry.superres.upscale import UpscaleConfig, UpscaleResult, upscale
    from ferry.verify import VerifyConfig, VerifyReport, verify
    from ferry.view import view
    from ferry.weights import load_state_dict

__all__ = [
    "BenchConfig",
    "BenchReport",
    "CheckResult",
    "DemoResult",
    "ExportConfig",
    "ExportResult",
    "FerryError",
    "InputSpec",
    "InternalError",
    "LoadedModel",
    "MissingDependencyError",
    "ModelInfo",
    "OptimizeConfig",
    "OptimizeResult",
    "OutputStats",
    "PackageResult",
    "RunResult",
    "ServeConfig",
    "Tolerance",
    "TrainConfig",
    "TrainResult",
    "UpscaleConfig",
    "UpscaleResult",
    "UserError",
    "VerificationError",
    "VerifyConfig",
    "VerifyReport",
    "__version__",
    "bench",
    "check",
    "compare_outputs",
    "eval_superres",
    "evaluate_superres",
    "export",
    "inspect_model",
    "load_model",
    "load_state_dict",
    "optimize",
    "package",
    "parse_input_spec",
    "run",
    "run_demo",
    "serve",
    "serve_on_ray",
    "super_resolve",
    "train_superres",
    "upscale",
    "upscale_on_ray",
    "verify",
    "view",
]
