"""Ray Data throughput of ``ferry upscale --ray``: one node against two, on this machine.

16 photos (the bundled ones, each resized to 512x384) are upscaled x3 with ``ferry upscale``'s
default model on ONNX Runtime: without Ray (the local path, on all cores and on one thread), and on
a Ray cluster of one node and then of two nodes started on this machine (``ray start``, one CPU
each: :func:`ferry._ray.local_cluster`), one worker per CPU. In each phase the Ray runs alternate
with the local ones, ROUNDS times each, every run into a fresh folder. Reported per configuration
(the best round): the wall time of the whole call (for Ray: connecting, starting the workers,
loading the model) and the steady rate between the first and the last file finished, in images/s,
with ratios to one node; and whether every output equals the local path's, byte for byte.
Writes benchmarks/results/ray_scaling.json.

    .venv/bin/python benchmarks/ray_scaling.py             # about five minutes on 2 cores
    .venv/bin/python benchmarks/ray_scaling.py --rounds 1  # quicker, noisier
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "ray_scaling.json"
PHOTOS = 16
SIZE = (512, 384)


def photos(folder: Path) -> Path:
    from ferry.superres import datasets

    folder.mkdir(parents=True)
    found = [*datasets.training_images("bundled"), *datasets.validation_images("bundled")]
    for name, img in found[:PHOTOS]:
        img.resize(SIZE).save(folder / f"{name}.png")
    return folder


def timed(run: Callable[..., Any], out: Path) -> dict[str, Any]:
    """One run: wall time, and the steady rate from the times the files were reported."""
    done: list[float] = []
    start = time.perf_counter()
    result = run(out, on_file=lambda item, n, total: done.append(time.perf_counter()))
    wall = time.perf_counter() - start
    assert not result.failed, [f.error for f in result.failed]
    steady = (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 and done[-1] > done[0] else float("nan")
    return {
        "seconds": round(wall, 2),
        "images_per_s": round(len(done) / wall, 3),
        "steady_images_per_s": round(steady, 3),
        "runtime": result.runtime,
    }


def same_files(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    return files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) and all(
        (a / f).read_bytes() == (b / f).read_bytes() for f in files
    )


def phase(nodes: int, source: Path, work: Path, rounds: int, reference: Path | None) -> dict[str, list[dict[str, Any]]]:
    """Ray on a cluster of ``nodes`` nodes, alternating with the local path."""
    from ferry._ray import local_cluster
    from ferry.superres.distributed import upscale_on_ray
    from ferry.superres.upscale import UpscaleConfig, upscale

    cfg = UpscaleConfig(backend="onnxruntime")
    runs: dict[str, list[dict[str, Any]]] = {}
    with local_cluster(nodes=nodes, cpus=1) as address:
        configs: dict[str, Callable[..., Any]] = {
            f"ray, {nodes} node{'s' if nodes > 1 else ''}": lambda out, **kw: upscale_on_ray(
                source, out, cfg, address=address, **kw
            ),
            "local, all cores": lambda out, **kw: upscale(source, out, cfg, **kw),
            "local, 1 thread": lambda out, **kw: upscale(
                source, out, UpscaleConfig(backend="onnxruntime", threads=1), **kw
            ),
        }
        for r in range(rounds):
            for name, run in configs.items():
                out = work / f"{name.replace(' ', '_').replace(',', '')}-{nodes}-{r}"
                entry = timed(run, out)
                if reference is not None:
                    entry["same_as_local"] = same_files(reference, out)
                runs.setdefault(name, []).append(entry)
                print(f"{name} (round {r + 1}): {entry['seconds']} s, {entry['steady_images_per_s']} images/s steady")
                shutil.rmtree(out)
    return runs


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    top = max(runs, key=lambda e: e["steady_images_per_s"])
    return {**top, "rounds": [{k: e[k] for k in ("seconds", "steady_images_per_s")} for e in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from ferry.superres.upscale import UpscaleConfig, upscale

    work = Path(tempfile.mkdtemp(prefix="ferry-ray-bench-"))
    try:
        source = photos(work / "photos")
        reference = work / "reference"
        model = upscale(source, reference, UpscaleConfig(backend="onnxruntime")).model  # and caches its export
        results: dict[str, Any] = {}
        for nodes in (1, 2):
            for name, runs in phase(nodes, source, work, args.rounds, reference).items():
                up = f" (beside {nodes} idle node{'s' if nodes > 1 else ''})" if name.startswith("local") else ""
                results[name + up] = best(runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    one = results["ray, 1 node"]["steady_images_per_s"]
    for entry in results.values():
        entry["steady_vs_1_node"] = round(entry["steady_images_per_s"] / one, 2)
    report = {
        "photos": f"{PHOTOS} bundled photos resized to {SIZE[0]}x{SIZE[1]}, x3",
        "model": f"ferry upscale's default ({model}) on onnxruntime",
        "nodes": "ray start on this machine, 1 CPU each; one worker (actor, one runtime session) per CPU",
        "machine": {"cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]},
        "python": sys.version.split()[0],
        "results": results,
    }
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
