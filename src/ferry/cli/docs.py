"""Generate the CLI reference (``docs/reference/cli.md``, between its markers) from the app itself.

``python -m ferry.cli.docs`` prints it; ``--write docs/reference/cli.md`` replaces the section in place.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import typer

from ferry._io import write_text_atomic

BEGIN = "<!-- cli-reference:begin -->"
END = "<!-- cli-reference:end -->"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def reference() -> str:
    """The ``--help`` text of ``ferry`` and every subcommand, as Markdown."""
    from ferry.cli import app

    root = typer.main.get_command(app)
    blocks: list[str] = []

    def walk(cmd: object, path: list[str]) -> None:
        ctx = cmd.make_context(path[-1], [], resilient_parsing=True, terminal_width=80, max_content_width=80)  # type: ignore[attr-defined]
        ctx.info_name = " ".join(path)
        text = _ANSI.sub("", cmd.get_help(ctx)).rstrip()  # type: ignore[attr-defined]
        blocks.append(f"### `{' '.join(path)}`\n\n```text\n{text}\n```\n")
        subs = getattr(cmd, "commands", {})
        for name in subs:
            walk(subs[name], [*path, name])

    walk(root, ["ferry"])
    return "\n".join(blocks)


def replace_section(page: str, body: str) -> str:
    """Put ``body`` between the reference markers of ``page``."""
    start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
    return page[:start] + "\n" + body + page[end:]


def main(argv: list[str]) -> int:
    text = reference()
    if argv[:1] == ["--write"] and len(argv) == 2:
        path = Path(argv[1])
        write_text_atomic(path, replace_section(path.read_text(encoding="utf-8"), text))
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
