"""ferry: take a PyTorch model to deployment and prove, with numbers, that it still works there.

The public API; every CLI command is a thin layer over one of these functions::

    import ferry
    result = ferry.export("zoo:superres", "sr.onnx")
    assert ferry.check("sr.onnx")
    report = ferry.verify("zoo:superres", "sr.onnx")
"""

from __future__ import annotations

from ferry._version import __version__
from ferry.bench import BenchConfig, BenchReport, bench
from ferry.check import CheckResult, check
from ferry.compare import OutputStats, Tolerance, compare_outputs
from ferry.errors import FerryError, InternalError, MissingDependencyError, UserError, VerificationError
from ferry.export import ExportConfig, ExportResult, export
from ferry.inspect_ import ModelInfo, inspect_model
from ferry.models import LoadedModel, load_model, load_state_dict
from ferry.optimize import OptimizeConfig, OptimizeResult, optimize
from ferry.package import PackageResult, package
from ferry.run import RunResult, run
from ferry.specs import InputSpec, parse_input_spec
from ferry.superres.demo import DemoResult, run_demo
from ferry.superres.evaluate import evaluate_superres as eval_superres
from ferry.superres.pipeline import super_resolve
from ferry.superres.scoring import evaluate as evaluate_superres
from ferry.superres.train import TrainConfig, TrainResult, train_superres
from ferry.superres.upscale import UpscaleConfig, UpscaleResult, upscale
from ferry.verify import VerifyConfig, VerifyReport, verify
from ferry.view import view

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
    "super_resolve",
    "train_superres",
    "upscale",
    "verify",
    "view",
]
