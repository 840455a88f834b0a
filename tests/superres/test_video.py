"""`ferry upscale` on video: frames upscaled x3, frame rate kept, audio copied."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import ferry
from ferry.superres.upscale import UpscaleConfig

av = pytest.importorskip("av", reason="video needs PyAV: pip install 'ferry[video]'")


def _clip(path: Path, frames: int = 12, size: tuple[int, int] = (32, 24), fps: int = 12) -> None:
    """A short H.264 clip with a moving gradient and a 440 Hz AAC tone."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        audio = out.add_stream("aac", rate=16000)
        audio.layout = "mono"
        for i in range(frames):
            x = np.linspace(0, 255, size[0])[None, :] + 10 * i
            rgb = np.stack([np.broadcast_to(x, size[::-1])] * 3, axis=-1) % 256
            out.mux(video.encode(av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")))
        out.mux(video.encode(None))
        samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 16000, 0, Fraction(1, 16000)
        out.mux(audio.encode(frame))
        out.mux(audio.encode(None))


def test_video_is_upscaled_with_rate_and_audio_kept(tmp_path: Path, cli) -> None:
    _clip(tmp_path / "clip.mp4")
    res = cli("upscale", tmp_path / "clip.mp4", "-o", tmp_path / "big.mp4", "--tile", "16")
    assert res.code == 0, res.err
    with av.open(str(tmp_path / "big.mp4")) as big:
        v = big.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == (96, 72)
        assert v.average_rate == 12
        assert sum(1 for _ in big.decode(video=0)) == 12
        assert len(big.streams.audio) == 1 and big.streams.audio[0].codec_context.name == "aac"


def test_unreadable_video_fails_alone_in_a_folder(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    _clip(src / "good.mp4", frames=3)
    (src / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    result = ferry.upscale(src, tmp_path / "out", UpscaleConfig(backend="torch"))
    status = {f.source.name: f.status for f in result.files}
    assert status == {"bad.mp4": "failed", "good.mp4": "done"}
    assert not (tmp_path / "out" / "bad.mp4").exists()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
