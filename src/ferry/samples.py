"""The only source of model inputs: seeded random samples, shape variants, array files and images.

Every stage draws its inputs here, so the same seed gives the same arrays in export, verify,
bench, optimize and run.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image

from ferry._inputs import input_file
from ferry.errors import UserError, first_line
from ferry.specs import MAX_INPUT_BYTES, InputSpec

Feeds = dict[str, np.ndarray]

# (scale, offset) of the random normals per sample: different signs and magnitudes, so that a
# branch frozen at export on one kind of input shows up on another.
SAMPLE_PATTERNS: tuple[tuple[float, float], ...] = ((1.0, 0.0), (0.25, 0.5), (3.0, -1.0), (0.5, -2.0), (2.0, 2.0))


def random_inputs(specs: Sequence[InputSpec], seed: int = 0) -> Feeds:
    """One set of inputs from one generator seeded with ``seed``, drawn in spec order (normals
    for floats, uniform integers in the spec's range)."""
    rng = np.random.default_rng(seed)
    return {s.name: s.sample(rng) for s in specs}


def sample(specs: Sequence[InputSpec], seed: int, index: int, *, patterned: bool = True) -> Feeds:
    """Sample number ``index`` of a seeded series; ``patterned`` varies the normals' scale and
    offset from sample to sample (:data:`SAMPLE_PATTERNS`)."""
    rng = np.random.default_rng([seed, index])
    scale, offset = SAMPLE_PATTERNS[index % len(SAMPLE_PATTERNS)] if patterned else (1.0, 0.0)
    return {s.name: s.sample(rng, scale=scale, offset=offset) for s in specs}


def _is_batch(spec: InputSpec, axis: int) -> bool:
    name = spec.dims[axis].name or ""
    return "batch" in name.lower() or (axis == 0 and name.lower() in ("n", "b", "bs"))


def _step(size: int) -> int:
    """The largest power of two (up to 32) dividing ``size``: keeps strided models' shapes valid."""
    step = 1
    while step < 32 and size % (step * 2) == 0:
        step *= 2
    return step


def shape_variants(specs: Sequence[InputSpec]) -> list[dict[str, int]]:
    """Sizes of the dynamic dims to try: the export sizes, then smaller and larger ones.

    A batch dim goes to 1 and to its size + 1 (so batch > 1 is always covered); other dims
    shrink and grow by about half their size, in multiples of their power-of-two step.
    """
    base: dict[str, int] = {}
    batch: set[str] = set()
    for spec in specs:
        for axis, dim in enumerate(spec.dims):
            if dim.name:
                base[dim.name] = dim.size
                if _is_batch(spec, axis):
                    batch.add(dim.name)
    if not base:
        return [{}]
    smaller, larger = {}, {}
    for name, size in base.items():
        if name in batch:
            smaller[name], larger[name] = 1 if size > 1 else size, size + 1
            continue
        step = _step(size)
        while step > 1 and size - max(step, (size // 2) // step * step) < 1:
            step //= 2
        delta = max(step, (size // 2) // step * step)
        smaller[name] = size - delta if size - delta >= 1 else size
        larger[name] = size + max(delta, _step(size))
    variants: list[dict[str, int]] = []
    for v in (base, smaller, larger):
        if v not in variants:
            variants.append(v)
    return variants


def label(specs: Sequence[InputSpec]) -> str:
    """``name=AxBxC ...``: how a set of input shapes is shown in tables."""
    return " ".join(f"{s.name}={'x'.join(map(str, s.shape))}" for s in specs)


def is_array_file(text: str) -> bool:
    """Whether an ``--input`` value names a ``.npy``/``.npz`` file (optionally ``name=file``)."""
    return text.rpartition("=")[2].endswith((".npy", ".npz"))


def read_arrays(paths: Sequence[str], names: Sequence[str]) -> Feeds:
    """Read inputs from ``.npy`` files (in input order, or ``name=file.npy``) and ``.npz`` archives.

    Raises:
        UserError: a missing or unreadable file, or more positional files than inputs.
    """
    feeds: Feeds = {}
    positional = 0
    for item in paths:
        name, sep, file = item.partition("=")
        if not sep:
            name, file = "", item
        path = input_file(file, "input file", hint="give a .npy or .npz file saved with numpy")
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as archive:
                    for name in archive.zip.namelist():
                        with archive.zip.open(name) as member:
                            _check_header(member, path, None)
                    feeds.update({k: archive[k] for k in archive.files})
                continue
            with path.open("rb") as f:
                _check_header(f, path, path.stat().st_size)
            arr = np.load(path, allow_pickle=False)
        except UserError:
            raise
        except Exception as exc:  # a damaged file: numpy and zipfile raise TokenError, zlib.error...
            raise UserError(f"cannot read {path} as a numpy array file: {first_line(exc)}") from exc
        if not name:
            if positional >= len(names):
                raise UserError(f"more input files than the model's {len(names)} input(s): {', '.join(names)}")
            name = names[positional]
            positional += 1
        feeds[name] = arr
    return feeds


def _check_header(f: IO[bytes], path: Path, file_bytes: int | None) -> None:
    """Refuse, from its header, an array larger than an input may be or than the file holds."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_INPUT_BYTES:
        raise UserError(f"{path} holds a {dtype} array of shape {shape}: over ferry's limit of 4 GiB per input")
    if file_bytes is not None and nbytes > file_bytes - f.tell():
        raise UserError(f"{path} is truncated: its header says {shape} {dtype} but the data is shorter")


def image_samples(
    folder: str | os.PathLike[str],
    preprocess: Callable[[Image.Image], list[np.ndarray]],
    names: Sequence[str],
) -> list[tuple[str, Feeds]]:
    """Labelled samples from a folder of images through a preprocessing, one per image.

    Raises:
        UserError: when the folder holds no image.
    """
    from ferry.images import find_images, load_image

    return [(p.name, dict(zip(names, preprocess(load_image(p)), strict=True))) for p in find_images(folder)]
