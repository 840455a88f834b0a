"""Training of the super-resolution zoo models on images from installed packages, deterministic from a seed.

Batches are drawn with a generator seeded by ``(seed, step)``, so a run resumed from a
checkpoint continues exactly as an uninterrupted one would. Every ``eval_every`` steps the model
is scored on fixed centre crops of the validation images (never on training data); the weights
with the highest mean gain over bicubic are kept and become the result, which is then scored on
the whole validation photos for the model card.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ferry._io import atomic_path, write_json_atomic
from ferry.cache import sha256_file
from ferry.errors import UserError
from ferry.superres import datasets, imaging
from ferry.superres.config import PRECISION_NAMES, TrainConfig
from ferry.superres.pipeline import torch_runner
from ferry.superres.scoring import Evaluation, evaluate
from ferry.zoo._y_upscaler import YUpscaler, widen
from ferry.zoo.edsr import EDSRY
from ferry.zoo.espcn import SuperResolutionNet
from ferry.zoo.span import SPANY

__all__ = ["ARCHITECTURES", "LOSSES", "TrainConfig", "TrainResult", "gain_summary", "train_superres"]

#: Trainable Y-channel architectures: name -> (model card name, constructor taking the scale).
ARCHITECTURES: dict[str, tuple[str, Callable[[int], nn.Module]]] = {
    "espcn": ("SuperResolutionNet (ESPCN)", lambda scale: SuperResolutionNet(upscale_factor=scale)),
    "edsr": ("EDSRY (EDSR-style, 8 residual blocks of 32 channels, Y channel)", lambda scale: EDSRY(scale)),
    "span": ("SPANY (SPAN-style, 4 attention blocks of 32 channels, Y channel)", lambda scale: SPANY(scale)),
    # "span" adding its output to bicubic upscaling (a fixed 5x5 convolution) instead of nearest
    "span-b": (
        "SPANY (SPAN-style, 4 attention blocks of 32 channels, bicubic base, Y channel)",
        lambda scale: SPANY(scale, base="bicubic"),
    ),
    # "span" widened to 48 features (about 2.2x its compute); --init with "span" weights grows them
    "span-w": (
        "SPANY (SPAN-style, 4 attention blocks of 48 channels, Y channel)",
        lambda scale: SPANY(scale, channels=48, blocks=4),
    ),
}
LOSSES: dict[str, Callable[[], nn.Module]] = {"mse": nn.MSELoss, "l1": nn.L1Loss}

# HR images are also used shrunk by these factors: more, sharper training content.
PYRAMID = (1.0, 0.8, 0.6)

#: Side of the centre crop of each validation image that checkpoint selection scores (HR pixels).
SELECTION_CROP = 384


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        weights: the written weights: those that scored best on the validation crops.
        card: the model card beside them.
        steps: optimizer steps run.
        seconds: training time (resumed runs included).
        evaluation: the kept weights scored on the whole validation images.
        best_step: the step the kept weights come from.
        history: the validation crops' scores at each evaluation.
    """

    weights: Path
    card: Path
    steps: int
    seconds: float
    evaluation: Evaluation
    best_step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.evaluation.mean_gain > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights": str(self.weights),
            "card": str(self.card),
            "steps": self.steps,
            "seconds": self.seconds,
            "evaluation": self.evaluation.to_dict(),
            "best_step": self.best_step,
            "history": self.history,
        }


def gain_summary(ev: Evaluation) -> dict[str, dict[str, float]]:
    """Mean, median and worst gain over bicubic across the images: PSNR (dB) and SSIM."""
    psnr = np.array([s.gain for s in ev.images])
    ssim = np.array([s.ssim_model - s.ssim_bicubic for s in ev.images])
    return {
        "psnr_gain_db": {"mean": float(psnr.mean()), "median": float(np.median(psnr)), "worst": float(psnr.min())},
        "ssim_gain": {"mean": float(ssim.mean()), "median": float(np.median(ssim)), "worst": float(ssim.min())},
    }


def selection_images(images: Sequence[tuple[str, Image.Image]], scale: int) -> list[tuple[str, Image.Image]]:
    """The fixed centre crops of the validation images that checkpoint selection scores."""
    return [(name, datasets.selection_crop(img, scale, SELECTION_CROP)) for name, img in images]


class PatchSampler:
    """Aligned random LR/HR Y-channel crops with flips and 90-degree rotations.

    Args:
        images: named RGB training images.
        scale: upscale factor.
        patch: low-resolution patch side.
        sources: one label per image; each source gives the same share of the patches, and
            within a source images are drawn by area (default: one source, all by area).
    """

    def __init__(
        self, images: list[tuple[str, Image.Image]], scale: int, patch: int, sources: Sequence[str] | None = None
    ) -> None:
        self.scale, self.patch = scale, patch
        labels: list[str] = []
        # Y planes kept as uint8 (a quarter of float32's memory for large photos); a batch
        # divides by 255 exactly as imaging.y_to_array does.
        self.lr: list[np.ndarray] = []
        self.hr: list[np.ndarray] = []
        for k, (_, img) in enumerate(images):
            for f in PYRAMID:
                im = (
                    img
                    if f == 1.0
                    else img.resize((round(img.width * f), round(img.height * f)), Image.Resampling.LANCZOS)
                )
                hr = imaging.crop_to_multiple(im, scale)
                lr = imaging.downscale(hr, scale)
                if lr.width < patch or lr.height < patch:
                    continue
                self.hr.append(np.asarray(imaging.split_ycbcr(hr)[0], dtype=np.uint8))
                self.lr.append(np.asarray(imaging.split_ycbcr(lr)[0], dtype=np.uint8))
                labels.append("" if sources is None else sources[k])
        if not self.lr:
            raise UserError(f"no training image is larger than {patch * scale} pixels")
        areas = np.array([a.size for a in self.lr], dtype=np.float64)
        self.weights = np.zeros_like(areas)
        for label in set(labels):
            mine = np.array([x == label for x in labels])
            self.weights[mine] = areas[mine] / areas[mine].sum() / len(set(labels))

    def batch(self, rng: np.random.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        p, s = self.patch, self.scale
        lrs = np.empty((size, 1, p, p), np.float32)
        hrs = np.empty((size, 1, p * s, p * s), np.float32)
        for k, idx in enumerate(rng.choice(len(self.lr), size=size, p=self.weights)):
            lr, hr = self.lr[idx], self.hr[idx]
            i = int(rng.integers(0, lr.shape[0] - p + 1))
            j = int(rng.integers(0, lr.shape[1] - p + 1))
            a = lr[i : i + p, j : j + p]
            b = hr[i * s : (i + p) * s, j * s : (j + p) * s]
            rot = int(rng.integers(0, 4))
            a, b = np.rot90(a, rot), np.rot90(b, rot)
            if rng.integers(0, 2):
                a, b = a[:, ::-1], b[:, ::-1]
            lrs[k, 0], hrs[k, 0] = a, b
        return torch.from_numpy(lrs / np.float32(255.0)), torch.from_numpy(hrs / np.float32(255.0))


def _lr_at(step: int, cfg: TrainConfig) -> float:
    warmup = min(100, cfg.steps // 10)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    t = (step - warmup) / max(1, cfg.steps - warmup)
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))


@dataclass
class _Progress:
    """What a checkpoint holds besides the model and optimizer state."""

    step: int = 0
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    best_step: int = 0
    best_gain: float = -math.inf
    best_model: dict[str, torch.Tensor] | None = None


def _check_config(cfg: TrainConfig) -> None:
    if cfg.scale not in (2, 3, 4):
        raise UserError(f"--scale must be 2, 3 or 4, got {cfg.scale}")
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.patch < 8:
        raise UserError("--steps and --batch-size must be positive and --patch at least 8")
    if cfg.arch not in ARCHITECTURES:
        raise UserError(f"unknown architecture {cfg.arch!r}; known: {', '.join(ARCHITECTURES)}")
    if cfg.loss not in LOSSES:
        raise UserError(f"unknown loss {cfg.loss!r}; known: {', '.join(LOSSES)}")
    if cfg.data not in datasets.DATA_SETS:
        raise UserError(f"unknown data set {cfg.data!r}; known: {', '.join(datasets.DATA_SETS)}")
    if cfg.checkpoint_every < 1:
        raise UserError("--checkpoint-every must be positive")
    if cfg.precision not in PRECISION_NAMES:
        raise UserError(f"unknown precision {cfg.precision!r}; known: {', '.join(PRECISION_NAMES)}")


def _identity(cfg: TrainConfig) -> dict[str, Any]:
    """The settings a checkpoint must match to be resumed."""
    return {"scale": cfg.scale, "seed": cfg.seed, "arch": cfg.arch, "data": cfg.data}


def best_weights_path(checkpoint: Path) -> Path:
    """Where the best weights so far are written beside a checkpoint (``x3.ckpt`` -> ``x3.best.safetensors``)."""
    return checkpoint.with_name(f"{checkpoint.stem}.best.safetensors")


def _resume(cfg: TrainConfig, model: nn.Module, opt: torch.optim.Optimizer) -> _Progress:
    """The progress stored in the checkpoint (its model and optimizer state loaded), or a fresh
    start when there is none yet.

    Raises:
        UserError: a checkpoint that is not a file, holds code, is damaged, or was made with
            other settings.
    """
    from ferry.weights import fit, torch_load

    if cfg.checkpoint is None or not cfg.checkpoint.exists():
        return _Progress()
    ckpt = torch_load(cfg.checkpoint, "checkpoint")
    damaged = UserError(f"checkpoint {cfg.checkpoint} is damaged or not one ferry train wrote; remove it to start over")
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("config", {}), dict):
        raise damaged
    made = {"arch": "espcn", "data": "bundled", **ckpt.get("config", {})}  # older checkpoints lack the keys
    if made != _identity(cfg):
        raise UserError(
            f"checkpoint {cfg.checkpoint} was made with other --scale/--seed/--arch/--data; remove it or match them"
        )
    try:
        best = ckpt.get("best", {})
        progress = _Progress(
            step=int(ckpt["step"]),
            seconds=float(ckpt["seconds"]),
            history=[dict(h) for h in ckpt["history"]],
            best_step=int(best.get("step", 0)),
            best_gain=float(best.get("gain", -math.inf)),
            best_model=best.get("model"),
        )
        best_model = progress.best_model
        if progress.step < 0 or not (
            best_model is None or all(isinstance(v, torch.Tensor) for v in best_model.values())
        ):
            raise damaged
        fit(model, ckpt["model"], cfg.checkpoint)
        opt.load_state_dict(ckpt["optimizer"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise damaged from exc
    return progress


def _save_checkpoint(cfg: TrainConfig, model: nn.Module, opt: torch.optim.Optimizer, progress: _Progress) -> None:
    assert cfg.checkpoint is not None
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "step": progress.step,
        "seconds": progress.seconds,
        "history": progress.history,
        "config": _identity(cfg),
        "best": {"step": progress.best_step, "gain": progress.best_gain, "model": progress.best_model},
    }
    with atomic_path(cfg.checkpoint) as tmp:
        torch.save(state, tmp)


def _save_weights(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=metadata)


def _select(
    cfg: TrainConfig, model: nn.Module, crops: list[tuple[str, Image.Image]], progress: _Progress
) -> Evaluation:
    """Score the model on the validation crops; keep its weights when they are the best so far."""
    ev = evaluate(torch_runner(model), crops, scale=cfg.scale)
    model.train()
    summary = gain_summary(ev)
    progress.history.append(
        {
            "step": progress.step,
            "psnr": ev.mean_model,
            "gain": ev.mean_gain,
            "median_gain": summary["psnr_gain_db"]["median"],
            "worst_gain": summary["psnr_gain_db"]["worst"],
            "ssim_gain": summary["ssim_gain"]["mean"],
        }
    )
    if ev.mean_gain > progress.best_gain:
        progress.best_step, progress.best_gain = progress.step, ev.mean_gain
        progress.best_model = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if cfg.checkpoint is not None:
            meta = {"step": str(progress.step), "crop_mean_gain_db": f"{ev.mean_gain:.4f}"}
            _save_weights(progress.best_model, best_weights_path(cfg.checkpoint), meta)
    return ev


def _initialise(model: nn.Module, path: Path) -> None:
    """Start from the weights in ``path``: the same network (fine-tuning), or for a residual
    Y upscaler, the same network with fewer channels, grown to this one (:func:`widen`)."""
    from ferry.weights import fit, read_state_dict

    state = read_state_dict(path)
    own = model.state_dict()
    narrower = state.keys() == own.keys() and any(state[k].shape != own[k].shape for k in own)
    if narrower and isinstance(model, YUpscaler):
        try:
            state = widen(model, state)
        except ValueError as exc:
            raise UserError(f"weights in {path} do not fit the model and cannot be widened to it: {exc}") from exc
    fit(model, state, path)


def _train_step(
    cfg: TrainConfig, step: int, model: nn.Module, opt: torch.optim.Optimizer, loss_fn: nn.Module, sampler: PatchSampler
) -> float:
    """One optimizer step on the batch of ``(seed, step)``; returns the loss."""
    lr_batch, hr_batch = sampler.batch(np.random.default_rng([cfg.seed, step]), cfg.batch_size)
    for group in opt.param_groups:
        group["lr"] = _lr_at(step, cfg)
    opt.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
        out = model(lr_batch.contiguous(memory_format=torch.channels_last))
    loss = loss_fn(out.float(), hr_batch)
    loss.backward()
    opt.step()
    return float(loss.item())


def train_superres(
    cfg: TrainConfig,
    *,
    on_step: Callable[[int, float], None] | None = None,
    on_eval: Callable[[int, Evaluation], None] | None = None,
) -> TrainResult:
    """Train a Y-channel upscaler (ESPCN, EDSR- or SPAN-style); write the best weights and a card.

    Args:
        cfg: run settings.
        on_step: called with ``(step, loss)`` after every step (progress bars).
        on_eval: called with ``(step, evaluation)`` at each scoring of the validation crops.

    Returns:
        The weights path (the weights that scored best on the validation crops), its model card
        and their scores on the whole validation images.

    Raises:
        UserError: bad settings, or a checkpoint made with other settings.
        MissingDependencyError: sporco or a wallpaper package is not installed.
    """
    _check_config(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    arch_name, build = ARCHITECTURES[cfg.arch]
    model = build(cfg.scale)
    if cfg.init is not None:
        _initialise(model, cfg.init)
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # about 1.2x faster convolutions on CPUs (oneDNN)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    progress = _resume(cfg, model, opt)
    train_files = datasets.training_files(cfg.data, root=cfg.wallpaper_root)
    val_files = datasets.validation_files(cfg.data, root=cfg.wallpaper_root)
    sampler = PatchSampler(datasets.load_all(train_files), cfg.scale, cfg.patch, [f.collection for f in train_files])
    val = datasets.load_all(val_files)
    crops = selection_images(val, cfg.scale)
    loss_fn = LOSSES[cfg.loss]()
    t0 = time.perf_counter() - progress.seconds
    model.train()
    for step in range(progress.step, cfg.steps):
        loss = _train_step(cfg, step, model, opt, loss_fn, sampler)
        progress.step = step + 1
        if on_step is not None:
            on_step(progress.step, loss)
        if (cfg.eval_every and progress.step % cfg.eval_every == 0) or progress.step == cfg.steps:
            ev = _select(cfg, model, crops, progress)
            if on_eval is not None:
                on_eval(progress.step, ev)
        if cfg.checkpoint is not None and (progress.step % cfg.checkpoint_every == 0 or progress.step == cfg.steps):
            progress.seconds = time.perf_counter() - t0
            _save_checkpoint(cfg, model, opt, progress)
    seconds = time.perf_counter() - t0
    if progress.best_model is None:  # resumed from a finished checkpoint of an older ferry
        _select(cfg, model, crops, progress)
    assert progress.best_model is not None
    model.load_state_dict(progress.best_model)
    ev = evaluate(torch_runner(model), val, scale=cfg.scale)
    out = Path(cfg.out)
    _save_weights(progress.best_model, out)
    card_path = write_json_atomic(
        out.with_suffix(".json"), _card(cfg, arch_name, seconds, progress, ev, train_files, val_files)
    )
    return TrainResult(
        weights=out,
        card=card_path,
        steps=cfg.steps,
        seconds=seconds,
        evaluation=ev,
        best_step=progress.best_step,
        history=progress.history,
    )


def _card(
    cfg: TrainConfig,
    arch_name: str,
    seconds: float,
    progress: _Progress,
    ev: Evaluation,
    train_files: list[datasets.SourceFile],
    val_files: list[datasets.SourceFile],
) -> dict[str, Any]:
    """The model card: settings, every training and validation file with its origin, and the scores."""
    flags = [f"--arch {cfg.arch}" if cfg.arch != "espcn" else "", f"--loss {cfg.loss}" if cfg.loss != "mse" else ""]
    flags.append(f"--data {cfg.data}" if cfg.data != "bundled" else "")
    skip = ("out", "checkpoint", "init", "wallpaper_root")
    return {
        "model": arch_name,
        "scale": cfg.scale,
        "trained_by": " ".join(["ferry train superres", *filter(None, flags)]),
        "config": {k: v for k, v in asdict(cfg).items() if k not in skip},
        **({"initialised_from": {"file": Path(cfg.init).name, "sha256": sha256_file(cfg.init)}} if cfg.init else {}),
        "training_seconds": round(seconds, 1),
        "cpu_threads": torch.get_num_threads(),
        "training_data": {
            "set": cfg.data,
            "scikit-image": list(datasets.SKIMAGE_TRAIN),
            "sporco": list(datasets.SPORCO_TRAIN),
            "pyramid": list(PYRAMID),
            "sampling": "each collection (bundled, wallpapers) gives the same share of patches; by area within one",
            "files": [f.to_dict() for f in train_files],
        },
        "selection": {
            "images": f"centre crops of at most {SELECTION_CROP}x{SELECTION_CROP} pixels of the validation images",
            "criterion": "highest mean PSNR gain over bicubic",
            "best_step": progress.best_step,
            "best_mean_gain_db": progress.best_gain,
            "history": progress.history,
        },
        "validation": {**ev.to_dict(), **gain_summary(ev)},
        "validation_files": [f.to_dict() for f in val_files],
        "torch": torch.__version__,
        "host_cores": os.cpu_count(),
    }
