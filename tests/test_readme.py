"""The README stays true: its commands run, and its CLI reference matches the app."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from ferry.cli import docs

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(name: str) -> str:
    start = README.index(f"<!-- {name}:begin -->")
    end = README.index(f"<!-- {name}:end -->")
    return README[start:end]


def test_quick_start_is_two_make_commands() -> None:
    quick = README[README.index("## Quick start") : README.index("## What ferry does")]
    commands = re.findall(r"^(make \w+)", quick, flags=re.M)
    assert commands == ["make demo", "make test"]


def test_cli_reference_is_current() -> None:
    assert docs.replace_section(README, docs.reference()) == README, "run `make docs` to regenerate it"


def test_readme_commands_run(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "tiny_models.py", tmp_path / "tests" / "tiny_models.py")
    (tmp_path / "ferry-demo").mkdir()
    from ferry.superres import datasets

    datasets.chelsea().save(tmp_path / "ferry-demo" / "original.png")
    monkeypatch.chdir(tmp_path)
    lines = [ln for ln in _section("readme-commands").splitlines() if ln.startswith("ferry ")]
    assert len(lines) >= 6
    for line in lines:
        res = cli(*shlex.split(line)[1:])
        assert res.code == 0, f"{line}\n{res.out}\n{res.err}"
    assert (tmp_path / "verify.html").is_file() and (tmp_path / "out.npz").is_file()


def test_readme_shows_a_real_demo_transcript() -> None:
    transcript = _section("demo-transcript")
    assert "$ make demo" in transcript
    assert "PSNR ferry" in transcript
