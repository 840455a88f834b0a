"""The README and the manual stay true: the README's commands run, it stays a front door, the
manual's links resolve, and the CLI reference in docs/ matches the app."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from ferry.cli import docs

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CLI_REFERENCE = ROOT / "docs" / "reference" / "cli.md"


def _section(name: str) -> str:
    start = README.index(f"<!-- {name}:begin -->")
    end = README.index(f"<!-- {name}:end -->")
    return README[start:end]


def test_quick_start_is_two_make_commands() -> None:
    quick = README[README.index("## Quick start") : README.index("## What ferry does")]
    commands = re.findall(r"^(make \w+)", quick, flags=re.M)
    assert commands == ["make demo", "make test"]


def test_cli_reference_is_current() -> None:
    page = CLI_REFERENCE.read_text(encoding="utf-8")
    assert docs.replace_section(page, docs.reference()) == page, "run `make docs` to regenerate it"


def test_readme_is_a_front_door_and_its_links_resolve() -> None:
    assert len(README.splitlines()) <= 300, "the README is the front door; the manual lives in docs/"
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)\)", text):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to a missing {target}"


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


def _docs_commands() -> list[tuple[str, str]]:
    """Every ``ferry ...`` command shown in the manual's code blocks, with its page."""
    found = []
    for page in sorted((ROOT / "docs").rglob("*.md")):
        if page.parent.name == "reference":
            continue
        in_code = False
        for line in page.read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                in_code = not in_code
            elif in_code and re.match(r"^(\$ )?ferry ", line):
                found.append((page.name, line.removeprefix("$ ").split("  #")[0].strip()))
    return found


def test_every_command_in_the_manual_parses() -> None:
    """The manual's commands name real commands and options (parsed by the app, not run)."""
    import typer

    from ferry.cli import app

    commands = _docs_commands()
    assert len(commands) >= 6
    root = typer.main.get_command(app)
    for page, line in commands:
        args = shlex.split(line)[1:]
        cmd, path = root, ["ferry"]
        while hasattr(cmd, "commands") and args and args[0] in cmd.commands:
            path.append(args[0])
            cmd = cmd.commands[args.pop(0)]
        ctx = cmd.make_context(" ".join(path), list(args))  # raises on an unknown option or a missing argument
        assert ctx.command is cmd, f"{page}: {line}"


def test_the_manuals_packaging_and_optimizing_commands_run(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli("export", "zoo:superres", "-o", "sr.onnx").code == 0
    cheap = [line for _, line in _docs_commands() if "--target ort-mobile" in line or "--quantize int8" in line]
    assert len(cheap) == 2
    for line in cheap:
        res = cli(*shlex.split(line)[1:])
        assert res.code == 0, f"{line}\n{res.out}\n{res.err}"
