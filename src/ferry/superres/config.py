"""What ``ferry train superres`` takes: the settings and the names of its choices.

Light on purpose (no torch): the command line reads its defaults and choices from here to print
``--help``; :mod:`ferry.superres.train` holds the networks and losses by these names (a test
keeps both equal).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Trainable Y-channel architectures (:data:`ferry.superres.train.ARCHITECTURES`).
ARCHITECTURE_NAMES = ("espcn", "edsr", "span", "span-b", "span-w")
#: Pixel losses (:data:`ferry.superres.train.LOSSES`).
LOSS_NAMES = ("mse", "l1")
#: Training/validation image sets (:mod:`ferry.superres.datasets`).
DATA_SET_NAMES = ("bundled", "wallpapers")
#: Arithmetic of the training steps: fp32, or bf16 autocast (fp32 weights and optimizer).
PRECISION_NAMES = ("fp32", "bf16")


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
        data: training and validation images, a key of :data:`datasets.DATA_SETS`
            (``wallpapers`` adds the Debian wallpaper photos, held out by package).
        wallpaper_root: folder the wallpaper packages are installed or extracted under
            (default ``/``).
        precision: ``fp32``, or ``bf16``: forward and backward passes autocast to bfloat16 (the
            weights, the optimizer and the loss stay fp32). About 3x faster steps on CPUs with
            AMX or AVX512-BF16, slower on others. Validation and the shipped weights are fp32.
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
    data: str = "bundled"
    wallpaper_root: Path | None = None
    precision: str = "fp32"
