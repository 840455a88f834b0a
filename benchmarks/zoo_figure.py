"""The README's figure of the zoo's x3 upscalers on two validation photos: PIL bicubic, ESPCN
(zoo:superres), the EDSR-style zoo:superres_edsr and the original, 1:1 crops with each whole
photo's PSNR on luminance (3-pixel border crop, as the model cards).

    python benchmarks/zoo_figure.py [-o docs/zoo-comparison.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

import ferry
from ferry.superres import datasets, imaging
from ferry.superres.pipeline import super_resolve, torch_runner

SCALE = 3
#: (photo, crop box in the high-resolution image): the butterfly's wing edge, the cup's rim
CROPS = (("monarch", (300, 150, 480, 330)), ("coffee", (150, 60, 330, 240)))
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "zoo-comparison.png"


def figure() -> Image.Image:
    photos = dict(datasets.validation_images())
    models = {
        "ESPCN": torch_runner(ferry.load_model("zoo:superres").module),
        "EDSR-style": torch_runner(ferry.load_model("zoo:superres_edsr").module),
    }
    rows = []
    for name, box in CROPS:
        hr = imaging.crop_to_multiple(photos[name].convert("RGB"), SCALE)
        lr = imaging.downscale(hr, SCALE)
        y = imaging.luminance(hr)
        panels = [("bicubic", imaging.upscale_bicubic(lr, SCALE))]
        panels += [(label, super_resolve(lr, run)) for label, run in models.items()]
        cells = [
            (f"{label} {imaging.psnr(y, imaging.luminance(im), border=SCALE):.2f} dB", im.crop(box))
            for label, im in panels
        ]
        rows.append(imaging.side_by_side([*cells, ("original", hr.crop(box))], height=240))
    out = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    top = 0
    for row in rows:
        out.paste(row, (0, top))
        top += row.height
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    image = figure()
    tmp = args.output.with_name(f".{args.output.name}.tmp.png")
    image.save(tmp, optimize=True)
    tmp.replace(args.output)
    print(f"wrote {args.output} ({image.width}x{image.height})")


if __name__ == "__main__":
    main()
