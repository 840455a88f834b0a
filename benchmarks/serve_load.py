"""Load on ``ferry serve``: 16 concurrent tritonclient clients, with and without dynamic batching.

Three servers of zoo:superres (ONNX Runtime) run as their own processes: ``--max-batch 1`` (every
request alone), ``--max-batch 8`` (a batch is what queued while the runtime ran) and ``--max-batch
8 --batch-timeout-ms 5`` (a batch also waits up to 5 ms for more requests). Each gets the same
200 requests (binary tensors, one 1x1xSIDExSIDE Y plane each) from 16 client threads, each thread
with its own ``tritonclient.http`` client, in interleaved rounds so that both see the same machine,
at each input size.
Reported per server: errors, p50/p99 latency, requests/s, and the mean batch size from its
``/metrics``; and the ratios to the server without batching. Writes benchmarks/results/serve_load.json.

    .venv/bin/python benchmarks/serve_load.py              # about two minutes on 2 cores
    .venv/bin/python benchmarks/serve_load.py --sides 256  # one size, larger inputs
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "serve_load.json"
MODES = {
    "no batching": ["--max-batch", "1"],
    "batching": ["--max-batch", "8"],
    "batching, 5 ms window": ["--max-batch", "8", "--batch-timeout-ms", "5"],
}


def start_server(extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "ferry", "serve", "zoo:superres", "--port", "0", "--backend", "onnxruntime", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"})
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(2)]  # "superres: zoo:superres on ...", "  http://..."
    found = re.search(r"http://127\.0\.0\.1:\d+", lines[1])
    if found is None:
        proc.kill()
        raise SystemExit(f"ferry serve did not start: {lines!r}")
    return proc, found.group().removeprefix("http://")


def batch_stats(address: str) -> tuple[float, float]:
    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=10).read().decode()
    values = {
        m.group(1): float(m.group(2)) for m in re.finditer(r"^(ferry_batch_size_(?:sum|count))\S* (\S+)$", text, re.M)
    }
    return values.get("ferry_batch_size_sum", 0.0), values.get("ferry_batch_size_count", 0.0)


def load(address: str, requests: int, clients: int, x: np.ndarray) -> dict[str, Any]:
    """``requests`` inferences from ``clients`` threads; latencies and errors."""
    import tritonclient.http as httpclient

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        client = httpclient.InferenceServerClient(address, network_timeout=120.0)
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        while True:
            with lock:
                if next(counter, None) is None:
                    break
            start = time.perf_counter()
            try:
                out = client.infer("superres", [inp]).as_numpy("output")
                assert out is not None and out.shape == (1, 1, 3 * x.shape[2], 3 * x.shape[3])
            except Exception as exc:  # counted and reported: a load test must not stop at the first one
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                latencies.append(time.perf_counter() - start)
        client.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"latencies": latencies, "errors": errors, "seconds": time.perf_counter() - began}


def summary(runs: list[dict[str, Any]], batches: tuple[float, float]) -> dict[str, Any]:
    lat = np.array([v for r in runs for v in r["latencies"]]) * 1e3
    seconds = sum(r["seconds"] for r in runs)
    return {
        "requests": int(lat.size + sum(len(r["errors"]) for r in runs)),
        "errors": sum(len(r["errors"]) for r in runs),
        "first_errors": [e for r in runs for e in r["errors"]][:3],
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "requests_per_s": round(lat.size / seconds, 1),
        "mean_batch_size": round(batches[0] / batches[1], 2) if batches[1] else None,
        "calls": int(batches[1]),
    }


def scenario(servers: dict[str, tuple[Any, str]], side: int, args: argparse.Namespace) -> dict[str, Any]:
    """Both servers under the same load at one input size, in interleaved rounds."""
    x = np.random.default_rng(0).random((1, 1, side, side), dtype=np.float32)
    for _, address in servers.values():
        load(address, 2 * args.clients, args.clients, x)  # warm-up: sessions, connections, caches
    before = {mode: batch_stats(address) for mode, (_, address) in servers.items()}
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in servers}
    per_round = args.requests // args.rounds
    for _ in range(args.rounds):
        for mode, (_, address) in servers.items():
            runs[mode].append(load(address, per_round, args.clients, x))
    after = {mode: batch_stats(address) for mode, (_, address) in servers.items()}
    results = {
        mode: summary(runs[mode], (after[mode][0] - before[mode][0], after[mode][1] - before[mode][1]))
        for mode in servers
    }
    off = results["no batching"]
    return {
        "input": list(x.shape),
        "results": results,
        "ratios_vs_no_batching": {
            mode: {
                "requests_per_s": round(r["requests_per_s"] / off["requests_per_s"], 2),
                "p50": round(r["p50_ms"] / off["p50_ms"], 2),
                "p99": round(r["p99_ms"] / off["p99_ms"], 2),
            }
            for mode, r in results.items()
            if mode != "no batching"
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--sides", default="8,64,128", help="input heights and widths to try (Y plane)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds per server and size")
    args = parser.parse_args()
    servers = {mode: start_server(extra) for mode, extra in MODES.items()}
    try:
        scenarios = [scenario(servers, int(side), args) for side in args.sides.split(",")]
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=60)
    report = {
        "model": "zoo:superres on onnxruntime",
        "clients": args.clients,
        "requests_per_server_and_size": args.requests // args.rounds * args.rounds,
        "rounds": args.rounds,
        "servers": {mode: " ".join(extra) for mode, extra in MODES.items()},
        "scenarios": scenarios,
        "machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
