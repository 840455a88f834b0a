"""Scale-out on Ray (issue 15, item 3): ``ferry upscale --ray`` and ``ferry serve --ray`` on a real
two-node cluster started here (a head and a second node process, one CPU each, token
authentication on), and ferry without ray.

The cluster is made once for the module by :func:`ferry._ray.local_cluster` and always stopped
(each ``ray start --block`` leads a process group of its own, which it ends). About a minute on 2
cores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import NETWORK_ATTEMPTS

RAY_REASON = "ray is not installed: pip install 'ferry[ray]'"
MOTO_REASON = "moto (a local S3 server for the s3:// tests) is not installed: pip install 'ferry[dev]'"
#: this process's and the cluster's nodes' AWS settings: fake credentials and a region, and no
#: instance metadata (the AWS SDK would ask 169.254.169.254 for credentials): the S3 tests talk to
#: a moto server on 127.0.0.1 and never to AWS
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
#: zoo:superres on ONNX Runtime: the fastest model and the same numbers on every node
FAST = ("--model", "zoo:superres", "--backend", "onnxruntime")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """``HOST:PORT`` of a two-node Ray cluster on this machine (:func:`ferry._ray.local_cluster`):
    a head and a second node, one CPU each, with their own token; stopped after the module."""
    from ferry._ray import local_cluster
    from ferry.registry import importable

    if not importable("ray"):  # (without importing it: Ray reads its settings from the environment then)
        pytest.skip(RAY_REASON)
    with pytest.MonkeyPatch.context() as env:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            env.delenv(key, raising=False)
        for key, value in AWS_ENV.items():
            env.setenv(key, value)  # the nodes' workers inherit them
        with local_cluster(nodes=2, cpus=1) as address:
            for part in ("ray.data", "ray.serve"):
                pytest.importorskip(part, reason=RAY_REASON)
            yield address


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of small photos (RGB, grayscale, RGBA, in a subfolder too) and one damaged file."""
    from ferry.superres import datasets

    folder = tmp_path_factory.mktemp("photos")
    cat = datasets.chelsea()
    for k in range(6):
        cat.crop((30 * k, 20 * k, 30 * k + 48 + 4 * k, 20 * k + 40)).save(folder / f"cat{k}.png")
    (folder / "more").mkdir()
    cat.crop((0, 0, 40, 30)).convert("L").save(folder / "more" / "gray.jpg", quality=90)
    cat.crop((100, 50, 136, 80)).convert("RGBA").save(folder / "more" / "alpha.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image")
    return folder


@pytest.fixture(scope="module")
def local_run(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ferry upscale`` of the folder on this machine, without Ray: the files to match."""
    from ferry.cli import main

    out = tmp_path_factory.mktemp("local") / "x3"
    assert main(["upscale", str(photos), "-o", str(out), *FAST]) == 1  # the damaged file
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.ray
def test_upscale_on_two_nodes_writes_the_files_of_a_local_run(
    cluster: str, photos: Path, local_run: Path, tmp_path: Path, cli: Any
) -> None:
    attempts = len(NETWORK_ATTEMPTS)
    out, report = tmp_path / "x3", tmp_path / "run.json"
    res = cli("upscale", photos, "-o", out, *FAST, "--ray", cluster, "--json", report)
    assert res.code == 1, res.err  # the damaged file fails; the others are written
    assert re.search(r"failed.*cannot read image .*broken\.png", res.err), res.err
    assert "1 file(s) could not be upscaled (see above); of the other 8, 8 written" in res.err
    data = json.loads(report.read_text())
    assert data["runtime"]["ray"] == {"address": cluster, "workers": 2, "cpus_per_worker": 1, "nodes": 2}
    assert [f["status"] for f in data["files"]].count("done") == 8
    expected, got = _files(local_run), _files(out)
    assert sorted(got) == sorted(expected) and len(got) == 8
    for name, payload in expected.items():
        with Image.open(local_run / name) as a, Image.open(out / name) as b:
            assert a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b)), name
        assert got[name] == payload, name  # the same encoder and options: the same bytes
    assert NETWORK_ATTEMPTS[attempts:] == []  # the cluster lives on this machine


@pytest.mark.ray
def test_a_rerun_does_only_the_files_not_written(cluster: str, photos: Path, local_run: Path, tmp_path: Path) -> None:
    from ferry.superres.distributed import upscale_on_ray
    from ferry.superres.upscale import UpscaleConfig

    out = tmp_path / "x3"
    shutil.copytree(local_run, out)
    (out / "cat3.png").unlink()
    (out / "more" / "alpha.png").unlink()
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.*")}
    seen: list[tuple[str, int, int]] = []
    cfg = UpscaleConfig(model="zoo:superres", backend="onnxruntime")
    result = upscale_on_ray(photos, out, cfg, address=cluster, on_file=lambda f, n, t: seen.append((f.status, n, t)))
    status = {str(f.source.relative_to(photos)): f.status for f in result.files}
    assert status.pop("cat3.png") == status.pop("more/alpha.png") == "done"
    assert status.pop("broken.png") == "failed" and set(status.values()) == {"skipped"}
    assert [n for _, n, _ in seen] == list(range(1, 10)) and {t for _, _, t in seen} == {9}
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in before.items())  # done files untouched
    assert _files(out) == _files(local_run)
    assert result.runtime["ray"]["workers"] == 2  # three files to do, on the two CPUs


@pytest.mark.ray
def test_a_worker_that_cannot_start_fails_the_run_with_its_own_error(
    cluster: str, photos: Path, tmp_path: Path, cli: Any
) -> None:
    """The driver checks the model at fp32 (torch allows that); every worker then refuses int8 on
    torch, and the run stops with that error in one line."""
    res = cli(
        "upscale", photos, "-o", tmp_path / "int8", "--model", "zoo:superres", "--backend", "torch",
        "--precision", "int8", "--ray", cluster,
    )  # fmt: skip
    assert res.code == 1
    assert "error: --precision int8 runs on an ONNX backend, not on torch" in res.err, res.err
    assert "Traceback" not in res.err and not (tmp_path / "int8").exists()


@pytest.mark.ray
def test_file_uris_give_the_files_of_a_local_run_and_a_rerun_skips_them(
    cluster: str, photos: Path, local_run: Path, tmp_path: Path, cli: Any
) -> None:
    """The folders as file:// URIs: listed, read and written through pyarrow's filesystem (each
    worker copies its file to a temporary folder and uploads the output), with the same bytes."""
    out, report = tmp_path / "x3", tmp_path / "run.json"
    res = cli("upscale", photos.as_uri(), "-o", out.as_uri(), *FAST, "--ray", cluster, "--json", report)
    assert res.code == 1, res.err
    broken = f"{photos.as_uri()}/broken.png"
    assert f"failed cannot read image {broken}: UnidentifiedImageError" in " ".join(res.err.split()), res.err
    assert "1 file(s) could not be upscaled (see above); of the other 8, 8 written" in res.err
    data = json.loads(report.read_text())
    assert data["runtime"]["ray"]["nodes"] == 2
    assert {f["source"]: f["target"] for f in data["files"]}[f"{photos.as_uri()}/more/gray.jpg"] == (
        f"{out.as_uri()}/more/gray.jpg"
    )
    assert _files(out) == _files(local_run)  # byte for byte, no temporary file left
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.*")}
    (out / "more" / "gray.jpg").unlink()
    # the output as a local path this time: a URI on one side is enough
    res = cli("upscale", photos.as_uri(), "-o", out, *FAST, "--ray", cluster)
    assert res.code == 1 and "x3: 1 written, 7 already there, 1 failed" in res.out, (res.out, res.err)
    assert _files(out) == _files(local_run)
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in before.items() if p.name != "gray.jpg")


@pytest.fixture
def s3(tmp_path: Path, photos: Path) -> Iterator[tuple[Any, str]]:
    """A moto S3 server on 127.0.0.1 with the photos in ``s3://ferry-test/photos``: its pyarrow
    filesystem and the query that points a URI at it."""
    pytest.importorskip("moto.server", reason=MOTO_REASON)
    import logging

    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        query = f"endpoint_override={host}:{port}&scheme=http&region=us-east-1"
        fs = pafs.S3FileSystem(
            endpoint_override=f"{host}:{port}", scheme="http", region="us-east-1", allow_bucket_creation=True
        )
        fs.create_dir("ferry-test")
        local = pafs.LocalFileSystem()
        pafs.copy_files(str(photos), "ferry-test/photos", source_filesystem=local, destination_filesystem=fs)
        yield fs, query
    finally:
        server.stop()


def _objects(fs: Any, prefix: str) -> dict[str, bytes]:
    import pyarrow.fs as pafs

    found = fs.get_file_info(pafs.FileSelector(prefix, recursive=True))
    return {
        f.path[len(prefix) + 1 :]: fs.open_input_stream(f.path).readall() for f in found if f.type == pafs.FileType.File
    }


@pytest.mark.ray
def test_s3_uris_give_the_files_of_a_local_run(
    cluster: str, s3: tuple[Any, str], local_run: Path, tmp_path: Path, cli: Any
) -> None:
    """A local S3 server (moto): listing, reads and writes over S3, skip-done from the output's
    listing, and the refusals (no such bucket, credentials it does not know) in one line."""
    from moto.core.authorization import enable_iam_authentication

    fs, query = s3
    source, output, report = f"s3://ferry-test/photos?{query}", f"s3://ferry-test/x3?{query}", tmp_path / "run.json"
    res = cli("upscale", source, "-o", output, *FAST, "--ray", cluster, "--json", report)
    assert res.code == 1, res.err
    assert "failed cannot read image s3://ferry-test/photos/broken.png:" in " ".join(res.err.split()), res.err
    assert "endpoint_override" not in res.err  # the URIs as they are named, without their options
    data = json.loads(report.read_text())
    assert data["runtime"]["ray"]["nodes"] == 2 and [f["status"] for f in data["files"]].count("done") == 8
    assert _objects(fs, "ferry-test/x3") == _files(local_run)
    with fs.open_input_stream("ferry-test/x3/more/gray.jpg") as stream:
        assert stream.metadata()["Content-Type"] == b"image/jpeg"
    fs.delete_file("ferry-test/x3/cat3.png")
    res = cli("upscale", source, "-o", output, *FAST, "--ray", cluster)
    assert res.code == 1 and "x3: 1 written, 7 already there, 1 failed" in res.out, (res.out, res.err)
    assert _objects(fs, "ferry-test/x3") == _files(local_run)

    res = cli("upscale", source, "-o", f"s3://nowhere/x3?{query}", *FAST, "--ray", cluster)
    assert res.code == 1 and "error: cannot list s3://nowhere/x3: the bucket does not exist" in res.err, res.err
    with enable_iam_authentication():  # moto now checks the keys, and knows none
        res = cli("upscale", source, "-o", output, *FAST, "--ray", cluster)
    assert (
        res.code == 1 and "error: cannot read s3://ferry-test/photos: access denied: give credentials that" in res.err
    )
    assert "Traceback" not in res.err and len(res.err.strip().splitlines()[-1]) < 500, res.err


def _superres_file() -> Path:
    from ferry.cache import cached_export
    from ferry.models import load_model

    return cached_export(load_model("zoo:superres"))


@pytest.mark.ray
def test_serve_on_two_replicas_answers_like_ferry_serve_and_stops_on_sigterm(
    cluster: str, photos: Path, local_run: Path
) -> None:
    pytest.importorskip("tritonclient.http", reason="tritonclient is not installed: pip install 'ferry[dev]'")
    import onnxruntime as ort
    import tritonclient.http as httpclient

    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "ferry", "serve", "zoo:superres", "--backend", "onnxruntime", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--ray", cluster, "--replicas", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(5)]
        assert banner[0].startswith("superres: zoo:superres on onnxruntime, batches of up to 8, 2 Ray Serve replica"), (
            banner,
            proc.stderr.read() if proc.poll() is not None and proc.stderr else "",
        )
        url = f"http://127.0.0.1:{port}"
        assert banner[1].strip() == f"{url}/v2/models/superres/infer" and banner[-1].startswith(f"metrics: {url}/")
        assert _replicas_running(cluster) == 2

        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}", network_timeout=60.0)
        x = np.random.default_rng(0).random((1, 1, 24, 32), dtype=np.float32)
        want = ort.InferenceSession(str(_superres_file()), providers=["CPUExecutionProvider"]).run(None, {"input": x})[
            0
        ]
        for binary in (True, False):
            inp = httpclient.InferInput("input", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=binary)
            got = client.infer("superres", [inp]).as_numpy("output")
            assert got.shape == (1, 1, 72, 96) and float(np.abs(got - want).max()) <= 1e-5

        request = urllib.request.Request(
            f"{url}/upscale", (photos / "cat2.png").read_bytes(), {"Content-Type": "image/png"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as reply:
            assert reply.read() == (local_run / "cat2.png").read_bytes()  # ferry upscale's file, byte for byte
        with pytest.raises(urllib.error.HTTPError) as refused:  # the protocol's errors, as ferry serve's
            urllib.request.urlopen(f"{url}/v2/models/nope", timeout=30)
        assert refused.value.code == 404 and "unknown model 'nope'" in refused.value.read().decode()
        second = subprocess.run([*cmd, "--ray", cluster], capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 1 and "error: a ferry serve --ray already runs on this cluster" in second.stderr
        assert _replicas_running(cluster) == 2  # the second one left the first alone

        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err, err
    assert _replicas_running(cluster) == 0  # the deployment is gone


def _replicas_running(address: str) -> int:
    import ray
    from ray import serve

    ray.init(address=address, logging_level="error", log_to_driver=False)
    try:
        app = serve.status().applications.get("ferry")
        return 0 if app is None else sum(d.replica_states.get("RUNNING", 0) for d in app.deployments.values())
    finally:
        ray.shutdown()


@pytest.mark.ray
def test_serve_refuses_more_replicas_than_the_cluster_holds(cluster: str, cli: Any) -> None:
    res = cli("serve", "zoo:superres", "--port", str(_free_port()), "--ray", cluster, "--replicas", "3")
    assert res.code == 1
    assert "error: the Ray cluster has 2 CPUs, not enough for 3 replica(s) of 1 (--threads)" in res.err, res.err


# -- without a cluster ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--ray", "here"), "--ray 'here': give local (a Ray instance"),
        (("--ray", "127.0.0.1:1"), "no Ray cluster answers at 127.0.0.1:1"),
    ],
)
def test_a_bad_address_is_one_line(photos: Path, tmp_path: Path, cli: Any, args: tuple[str, ...], message: str) -> None:
    pytest.importorskip("ray", reason=RAY_REASON)
    start = time.monotonic()
    res = cli("upscale", photos, "-o", tmp_path / "out", *FAST, *args)
    assert res.code == 1 and message in res.err and "Traceback" not in res.err, res.err
    assert time.monotonic() - start < 60  # not Ray's minutes of retries


def test_ray_upscales_folders_not_files(photos: Path, tmp_path: Path, cli: Any) -> None:
    pytest.importorskip("ray", reason=RAY_REASON)
    res = cli("upscale", photos / "cat0.png", "-o", tmp_path / "cat.png", "--ray", "local")
    assert res.code == 1 and "--ray upscales a folder and" in res.err and "leave out --ray" in res.err


def test_uris_need_ray(photos: Path, tmp_path: Path, cli: Any) -> None:
    for args in (("s3://bucket/photos", "-o", tmp_path / "out"), (photos, "-o", "s3://KEY:SECRET@bucket/out?region=x")):
        res = cli("upscale", *args, *FAST)
        assert res.code == 1 and "URIs need --ray ADDRESS (--ray local: Ray on this machine" in res.err, res.err
        assert "SECRET" not in res.err and "region" not in res.err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("source", "output", "message"),
    [
        ("foo://b/photos", "out", "cannot open foo://b/photos: pyarrow knows no filesystem foo://; give one it knows"),
        ("s3://", "out", "s3:// names no folder: give one, e.g. s3://BUCKET/FOLDER"),
        ("{photos}/nothing", "out", "input not found: {photos}/nothing"),
        ("{photos}/cat0.png", "out", "--ray upscales a folder and {photos}/cat0.png is a file; give the folder"),
        ("{photos}", "{photos}/cat0.png", "{photos}/cat0.png is a file; give a folder as the output"),
        ("{photos}", "{photos}/", "refusing to write into {photos}: it is the input folder"),
        ("{photos}", "{plain}", "refusing to write into {plain}: it is the input folder"),
    ],
)
def test_a_bad_uri_is_one_line_before_ray_starts(
    photos: Path, cli: Any, monkeypatch: pytest.MonkeyPatch, source: str, output: str, message: str
) -> None:
    pytest.importorskip("ray.data", reason=RAY_REASON)
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    names = {"photos": photos.as_uri(), "plain": str(photos)}
    res = cli("upscale", source.format(**names), "-o", output.format(**names), *FAST, "--ray", "127.0.0.1:1")
    assert res.code == 1 and message.format(**names) in res.err and "Traceback" not in res.err, res.err


def test_uri_listing_finds_what_a_local_walk_finds(photos: Path, tmp_path: Path) -> None:
    """The same files in the same order, with an output folder inside the input left out and
    ferry's temporary files skipped, as :func:`~ferry.superres.upscale.folder_jobs` does."""
    pytest.importorskip("pyarrow.fs", reason=RAY_REASON)
    from ferry.superres.distributed import _uri_files
    from ferry.superres.upscale import UpscaleConfig, folder_jobs

    folder = tmp_path / "in"
    shutil.copytree(photos, folder)
    (folder / "a").mkdir()
    (folder / "a" / "b.png").write_bytes((photos / "cat0.png").read_bytes())
    (folder / "a.png").write_bytes((photos / "cat1.png").read_bytes())  # sorts after a/ as paths do
    (folder / "x3" / "old").mkdir(parents=True)
    (folder / "x3" / "cat0.png").write_bytes((photos / "cat0.png").read_bytes())  # an earlier run's output
    (folder / "more" / ".ferry-tmp-0000-1-ab.png").write_bytes(b"half")
    (folder / "notes.txt").write_text("not an image")
    files = _uri_files(folder.as_uri(), f"{folder.as_uri()}/x3", UpscaleConfig())
    local = [(p.relative_to(folder).as_posix(), t) for p, t in folder_jobs(folder, folder / "x3", 3)]
    assert [str(s).removeprefix(folder.as_uri() + "/") for s, _ in files.jobs] == [name for name, _ in local]
    assert [t for _, t in files.jobs] == [(folder / "x3").as_uri() + "/" + name for name, _ in local]
    assert files.done == {[name for name, _ in local].index("cat0.png")}  # its output is there
    assert files.paths[0] == (str(folder / "a" / "b.png"), str(folder / "x3" / "a" / "b.png"))


@pytest.fixture
def without_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """ray cannot be imported, as on a core install."""
    monkeypatch.setitem(sys.modules, "ray", None)


def test_without_ray_the_commands_work_and_ray_options_say_what_to_install(
    without_ray: None, photos: Path, tmp_path: Path, cli: Any
) -> None:
    for command in ("upscale", "serve"):
        res = cli(command, "--help")
        assert res.code == 0 and "--ray" in res.out
    res = cli("upscale", photos, "-o", tmp_path / "out", *FAST, "--ray", "local")
    assert res.code == 1 and "error: ray is not installed: pip install 'ferry[ray]'" in res.err, res.err
    assert not (tmp_path / "out").exists()
    res = cli("serve", "zoo:superres", "--ray", "local")
    assert res.code == 1 and "error: ray is not installed: pip install 'ferry[ray]'" in res.err, res.err
    res = cli("upscale", photos / "more" / "gray.jpg", "-o", tmp_path / "gray.png", *FAST)
    assert res.code == 0, res.err  # the local path never needs ray


def test_replicas_need_ray(cli: Any) -> None:
    res = cli("serve", "zoo:superres", "--replicas", "2")
    assert res.code == 1 and "--replicas needs --ray" in res.err
