"""The model zoo: named architectures with declared inputs, outputs, tolerances and weights.

Each model family lives in its own module and is registered explicitly in :data:`REGISTRY`
below (no import side effects).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from ferry.preprocessing import Preprocess, for_task
from ferry.registry import Registry
from ferry.specs import InputSpec, parse_input_spec
from ferry.zoo._tasks import superres_y_task

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ZooModel:
    """A registered model: how to build it and what it consumes and produces.

    Attributes:
        name: registry name (``zoo:NAME`` on the command line).
        summary: one line for ``ferry zoo list``.
        factory: builds the ``nn.Module`` from keyword arguments.
        inputs: input specs with names; named dims are dynamic.
        outputs: output names.
        weights: file name of a safetensors state dict shipped in ``ferry/zoo/weights``,
            or ``None`` when the model has random weights.
        weights_note: where the weights come from, in plain words.
        tolerance: default (rtol, atol) for float32 parity.
        task: task metadata (kind, scale factor, colour space, and ``preprocess``: the name of
            the :mod:`ferry.preprocessing` that turns a photo into the model's inputs).
    """

    name: str
    summary: str
    factory: Callable[..., nn.Module]
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    weights: str | None
    weights_note: str
    tolerance: tuple[float, float] = (1e-4, 1e-5)
    task: dict[str, Any] = field(default_factory=dict)

    @property
    def preprocess(self) -> Preprocess | None:
        """Turns an RGB image into the model's input arrays (``verify --images``)."""
        return for_task(self.task)

    @property
    def trained(self) -> bool:
        return self.weights is not None

    def card(self) -> dict[str, Any]:
        """The model card written by the training run beside the weights (empty when untrained)."""
        if self.weights is None:
            return {}
        path = resources.files("ferry.zoo") / "weights" / self.weights.replace(".safetensors", ".json")
        if not path.is_file():
            return {}
        return dict(json.loads(path.read_text(encoding="utf-8")))

    def weights_file(self) -> resources.abc.Traversable | None:
        """The shipped safetensors file of the weights (``None`` for an untrained model)."""
        return None if self.weights is None else resources.files("ferry.zoo") / "weights" / self.weights

    def build(self, **kwargs: Any) -> nn.Module:
        """Instantiate the model, load its shipped weights when it has them, and set eval mode."""
        from ferry.weights import load_state_dict

        model = self.factory(**kwargs)
        if self.weights is not None and not kwargs:
            with resources.as_file(resources.files("ferry.zoo") / "weights" / self.weights) as path:
                load_state_dict(model, path)
        return model.eval()


@dataclass(frozen=True)
class _Factory:
    """A network class named by its module in ``ferry.zoo``, imported only when a model is built:
    listing the zoo, or upscaling with an export already in the cache, does not import torch."""

    module: str
    name: str
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __call__(self, **kwargs: Any) -> nn.Module:
        cls = getattr(importlib.import_module(f"ferry.zoo.{self.module}"), self.name)
        return cls(**(dict(self.kwargs) | kwargs))


def _factory(module: str, name: str, **kwargs: Any) -> _Factory:
    return _Factory(module, name, tuple(sorted(kwargs.items())))


def _specs(*texts: str, names: tuple[str, ...]) -> tuple[InputSpec, ...]:
    return tuple(parse_input_spec(t).with_name(n) for t, n in zip(texts, names, strict=True))


#: Upscale factors of the shipped ESPCN weights; x3 is ``zoo:superres``, the others ``superres_xN``.
SUPERRES_SCALES = (3, 2, 4)


def superres_name(scale: int) -> str:
    """The zoo name of the ESPCN model for an upscale factor."""
    return "superres" if scale == 3 else f"superres_x{scale}"


#: The strongest shipped upscaler per factor (mean gain over bicubic on held-out photos): what
#: ``ferry upscale`` runs unless ``--fast`` (ESPCN, :func:`superres_name`) or ``--model`` says otherwise.
BEST_UPSCALERS = {3: "superres_span", 2: "superres_span_x2", 4: "superres_span_x4"}


def upscaler_name(scale: int = 3, *, fast: bool = False) -> str:
    """The zoo name ``ferry upscale`` uses for an upscale factor: the strongest model, or with
    ``fast`` the tutorial's ESPCN."""
    if scale not in SUPERRES_SCALES:
        raise KeyError(scale)
    return superres_name(scale) if fast else BEST_UPSCALERS[scale]


def _stronger_upscalers(reg: Registry[ZooModel]) -> None:
    """The models that trade a little speed for quality over ESPCN (x3, and SPAN at x2 and x4)."""
    reg.register(
        ZooModel(
            name="superres_edsr",
            summary="EDSR-style residual network x3 on the Y channel (8 blocks of 32 channels): the stronger upscaler",
            factory=_factory("edsr", "EDSRY", upscale_factor=3),
            inputs=_specs("batch=1,1,height=224,width=224", names=("input",)),
            outputs=("output",),
            weights="superres_edsr_x3.safetensors",
            weights_note="trained by ferry (ferry train superres --arch edsr --loss l1) on the same bundled images",
            # 19 convolutions deep: float runtimes that reorder sums drift a little further than ESPCN.
            tolerance=(1e-4, 2e-4),
            task=superres_y_task(3),
        )
    )
    for scale in SUPERRES_SCALES:
        reg.register(
            ZooModel(
                name="superres_span" if scale == 3 else f"superres_span_x{scale}",
                summary=f"SPAN-style network x{scale} on the Y channel (4 attention blocks of 32 channels): the best"
                f" x{scale} model" + (", ~2.3x ESPCN's CPU time" if scale == 3 else ""),
                factory=_factory("span", "SPANY", upscale_factor=scale),
                inputs=_specs("batch=1,1,height=224,width=224", names=("input",)),
                outputs=("output",),
                weights=f"superres_span_x{scale}.safetensors",
                weights_note="trained by ferry (ferry train superres --arch span --loss l1 --data wallpapers) on the"
                " bundled images and Debian wallpaper photos; checkpoint chosen on held-out photos",
                tolerance=(1e-4, 2e-4),
                task=superres_y_task(scale),
            )
        )


def _build_registry() -> Registry[ZooModel]:
    reg: Registry[ZooModel] = Registry("zoo model")
    for scale in SUPERRES_SCALES:
        reg.register(
            ZooModel(
                name=superres_name(scale),
                summary=f"ESPCN super-resolution x{scale} (the PyTorch tutorial's SuperResolutionNet) on the Y channel",
                factory=_factory("espcn", "SuperResolutionNet", upscale_factor=scale),
                inputs=_specs("batch=1,1,height=224,width=224", names=("input",)),
                outputs=("output",),
                weights=f"superres_x{scale}.safetensors",
                weights_note="trained by ferry (ferry train superres) on images bundled with scikit-image and sporco",
                # Outputs are pixel values in [0, 1]: 1e-4 is 1/40 of a grey level. f32 runtimes that
                # reorder convolution sums (OpenVINO) reach a few 1e-5 on out-of-range random inputs.
                tolerance=(1e-4, 1e-4),
                task=superres_y_task(scale),
            )
        )
    _stronger_upscalers(reg)
    reg.register(
        ZooModel(
            name="srresnet",
            summary="SRResNet x4 (Ledig et al. 2017), 16 residual blocks, on RGB in [0, 1]",
            factory=_factory("srresnet", "SRResNet"),
            inputs=_specs("batch=1,3,height=64,width=64", names=("input",)),
            outputs=("output",),
            weights=None,
            weights_note="architecture only, not trained here",
            tolerance=(1e-3, 1e-4),
            task={"kind": "super-resolution", "scale": 4, "colour": "RGB in [0, 1]", "preprocess": "rgb"},
        )
    )
    reg.register(
        ZooModel(
            name="alexnet",
            summary="AlexNet image classifier (Krizhevsky et al. 2012), 1000 classes",
            factory=_factory("alexnet", "AlexNet"),
            inputs=_specs("batch=1,3,224,224", names=("image",)),
            outputs=("logits",),
            weights=None,
            weights_note="architecture only: ImageNet weights cannot be fetched here",
            tolerance=(1e-3, 1e-4),
            task={
                "kind": "classification",
                "classes": 1000,
                "colour": "RGB, ImageNet-normalised",
                "preprocess": "imagenet",
            },
        )
    )
    return reg


REGISTRY = _build_registry()


def get(name: str) -> ZooModel:
    """Look up a zoo model by name."""
    return REGISTRY.get(name)


def names() -> list[str]:
    """Names of all zoo models."""
    return REGISTRY.names()
