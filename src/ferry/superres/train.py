"""Training of the super-resolution zoo model on bundled images, deterministic from a seed.

Batches are drawn with a generator seeded by ``(seed, step)``, so a run resumed from a
checkpoint continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
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
from ferry.superres.pipeline import torch_runner
from ferry.superres.scoring import Evaluation, evaluate
from ferry.zoo.edsr import EDSRY
from ferry.zoo.espcn import SuperResolutionNet

#: Trainable Y-channel architectures: name -> (model card name, constructor taking the scale).
ARCHITECTURES: dict[str, tuple[str, Callable[[int], nn.Module]]] = {
    "espcn": ("SuperResolutionNet (ESPCN)", lambda scale: SuperResolutionNet(upscale_factor=scale)),
    "edsr": ("EDSRY (EDSR-style, 8 residual blocks of 32 channels, Y channel)", lambda scale: EDSRY(scale)),
}
LOSSES: dict[str, Callable[[], nn.Module]] = {"mse": nn.MSELoss, "l1": nn.L1Loss}

# HR images are also used shrunk by these factors: more, sharper training content.
PYRAMID = (1.0, 0.8, 0.6)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a super-resolution training run.

    Attributes:
        out: path of the ``.safetensors`` weights to write (a ``.json`` card goes beside it).
        scale: upscale factor (2, 3 or 4).
        steps: optimizer steps.
        batch_size: patches per step.
        patch: low-resolution patch side in pixels.
        lr: peak learning rate (Adam, cosine decay to 1% of it).
        seed: seed for initialisation and batch sampling.
        checkpoint: file to save progress to every ``checkpoint_every`` steps and to resume from.
        threads: torch intra-op threads (0 keeps torch's default).
        eval_every: steps between validation PSNR reports (0: only at the end).
        arch: network to train, a key of :data:`ARCHITECTURES`.
        loss: pixel loss, ``mse`` or ``l1`` (L1 trains residual networks to a higher PSNR).
        init: a ``.safetensors`` state dict to start from (fine-tuning) instead of a fresh
            initialisation; its hash is recorded in the card.
    """

    out: Path
    scale: int = 3
    steps: int = 24000
    batch_size: int = 64
    patch: int = 32
    lr: float = 1e-3
    seed: int = 0
    checkpoint: Path | None = None
    checkpoint_every: int = 250
    threads: int = 0
    eval_every: int = 2000
    arch: str = "espcn"
    loss: str = "mse"
    init: Path | None = None


@dataclass
class TrainResult:
    """What a training run produced."""

    weights: Path
    card: Path
    steps: int
    seconds: float
    evaluation: Evaluation
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
            "history": self.history,
        }


class PatchSampler:
    """Aligned random LR/HR Y-channel crops with flips and 90-degree rotations."""

    def __init__(self, images: list[tuple[str, Image.Image]], scale: int, patch: int) -> None:
        self.scale, self.patch = scale, patch
        self.lr: list[np.ndarray] = []
        self.hr: list[np.ndarray] = []
        for _, img in images:
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
                self.hr.append(imaging.y_to_array(imaging.split_ycbcr(hr)[0])[0, 0])
                self.lr.append(imaging.y_to_array(imaging.split_ycbcr(lr)[0])[0, 0])
        if not self.lr:
            raise UserError(f"no training image is larger than {patch * scale} pixels")
        areas = np.array([a.size for a in self.lr], dtype=np.float64)
        self.weights = areas / areas.sum()

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
        return torch.from_numpy(lrs), torch.from_numpy(hrs)


def _lr_at(step: int, cfg: TrainConfig) -> float:
    warmup = min(100, cfg.steps // 10)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    t = (step - warmup) / max(1, cfg.steps - warmup)
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))


def train_superres(
    cfg: TrainConfig,
    *,
    on_step: Callable[[int, float], None] | None = None,
    on_eval: Callable[[int, Evaluation], None] | None = None,
) -> TrainResult:
    """Train a Y-channel upscaler (ESPCN or EDSR-style) on the bundled images; write safetensors weights.

    Args:
        cfg: run settings.
        on_step: called with ``(step, loss)`` after every step (progress bars).
        on_eval: called with ``(step, evaluation)`` at each validation.

    Returns:
        The weights path, its model card and the final validation PSNR against bicubic.
    """
    from safetensors.torch import save_file

    if cfg.scale not in (2, 3, 4):
        raise UserError(f"--scale must be 2, 3 or 4, got {cfg.scale}")
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.patch < 8:
        raise UserError("--steps and --batch-size must be positive and --patch at least 8")
    if cfg.arch not in ARCHITECTURES:
        raise UserError(f"unknown architecture {cfg.arch!r}; known: {', '.join(ARCHITECTURES)}")
    if cfg.loss not in LOSSES:
        raise UserError(f"unknown loss {cfg.loss!r}; known: {', '.join(LOSSES)}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    arch_name, build = ARCHITECTURES[cfg.arch]
    model = build(cfg.scale)
    if cfg.init is not None:
        from ferry.weights import load_state_dict

        load_state_dict(model, cfg.init)  # safetensors or a weights-only torch file; shapes must match
    identity = {"scale": cfg.scale, "seed": cfg.seed, "arch": cfg.arch}
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start, elapsed, history = 0, 0.0, []
    if cfg.checkpoint is not None and cfg.checkpoint.is_file():
        ckpt = torch.load(cfg.checkpoint, map_location="cpu", weights_only=True)
        made = {"arch": "espcn", **ckpt.get("config", {})}
        if made != identity:
            raise UserError(
                f"checkpoint {cfg.checkpoint} was made with other --scale/--seed/--arch; remove it or match them"
            )
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        start, elapsed, history = int(ckpt["step"]), float(ckpt["seconds"]), list(ckpt["history"])
    sampler = PatchSampler(datasets.training_images(), cfg.scale, cfg.patch)
    val = datasets.validation_images()
    loss_fn = LOSSES[cfg.loss]()
    t0 = time.perf_counter() - elapsed
    model.train()
    for step in range(start, cfg.steps):
        rng = np.random.default_rng([cfg.seed, step])
        lr_batch, hr_batch = sampler.batch(rng, cfg.batch_size)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(lr_batch), hr_batch)
        loss.backward()
        opt.step()
        done = step + 1
        if on_step is not None:
            on_step(done, loss.item())
        if cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.steps:
            ev = evaluate(torch_runner(model), val, scale=cfg.scale)
            history.append({"step": done, "psnr": ev.mean_model, "gain": ev.mean_gain})
            if on_eval is not None:
                on_eval(done, ev)
            model.train()
        if cfg.checkpoint is not None and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            state = {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "step": done,
                "seconds": time.perf_counter() - t0,
                "history": history,
                "config": identity,
            }
            with atomic_path(cfg.checkpoint) as tmp:
                torch.save(state, tmp)
    seconds = time.perf_counter() - t0
    model.eval()
    ev = evaluate(torch_runner(model), val, scale=cfg.scale)
    if on_eval is not None:
        on_eval(cfg.steps, ev)
    out = Path(cfg.out)
    with atomic_path(out) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    card_path = out.with_suffix(".json")
    card = {
        "model": arch_name,
        "scale": cfg.scale,
        "trained_by": "ferry train superres"
        + (f" --arch {cfg.arch}" if cfg.arch != "espcn" else "")
        + (f" --loss {cfg.loss}" if cfg.loss != "mse" else ""),
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("out", "checkpoint", "init")},
        **({"initialised_from": {"file": Path(cfg.init).name, "sha256": sha256_file(cfg.init)}} if cfg.init else {}),
        "training_seconds": round(seconds, 1),
        "cpu_threads": torch.get_num_threads(),
        "training_data": {
            "scikit-image": list(datasets.SKIMAGE_TRAIN),
            "sporco": list(datasets.SPORCO_TRAIN),
            "pyramid": list(PYRAMID),
        },
        "validation": ev.to_dict(),
        "torch": torch.__version__,
        "host_cores": os.cpu_count(),
    }
    write_json_atomic(card_path, card)
    return TrainResult(weights=out, card=card_path, steps=cfg.steps, seconds=seconds, evaluation=ev, history=history)
