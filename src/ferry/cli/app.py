"""The wiring of the ``ferry`` command line: the app, its commands, and the one place where errors
become exit codes and one-line messages.

Exit codes: 0 success, 1 user error (bad input, missing file, unknown name), 2 verification or
quality threshold failed, 3 internal error (a bug in ferry).
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated

import typer
from rich.markup import escape

from ferry._version import __version__
from ferry.cli._render import err_console
from ferry.cli.bench import bench_cmd
from ferry.cli.check import check_cmd
from ferry.cli.demo import demo_cmd
from ferry.cli.export import export_cmd
from ferry.cli.inspect import inspect_cmd
from ferry.cli.optimize import optimize_cmd
from ferry.cli.package import package_cmd
from ferry.cli.run import run_cmd
from ferry.cli.train import eval_cmd, train_cmd, zoo_app
from ferry.cli.upscale import upscale_cmd
from ferry.cli.verify import verify_cmd
from ferry.cli.view import view_cmd
from ferry.errors import EXIT_INTERNAL_ERROR, EXIT_USER_ERROR, FerryError

app = typer.Typer(
    name="ferry",
    help="Take a PyTorch model to deployment and prove, with numbers, that it still works there.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class _State:
    debug = False


def _version(value: bool) -> None:
    if value:
        print(f"ferry {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """Take a PyTorch model to deployment and prove, with numbers, that it still works there."""
    _State.debug = debug


app.command("demo")(demo_cmd)
app.command("export")(export_cmd)
app.command("check")(check_cmd)
app.command("inspect")(inspect_cmd)
app.command("view")(view_cmd)
app.command("run")(run_cmd)
app.command("verify")(verify_cmd)
app.command("upscale")(upscale_cmd)
app.command("optimize")(optimize_cmd)
app.command("bench")(bench_cmd)
app.command("package")(package_cmd)
app.command("train")(train_cmd)
app.command("eval")(eval_cmd)
app.add_typer(zoo_app, name="zoo")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (errors become one line on stderr)."""
    args = list(sys.argv[1:] if argv is None else argv)
    _State.debug = "--debug" in args
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="ferry", standalone_mode=False)
    except FerryError as exc:
        if _State.debug:
            traceback.print_exc()
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        return exc.exit_code
    except (typer.Exit, typer.Abort) as exc:
        return int(getattr(exc, "exit_code", 1))
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as exc:
        # typer's (vendored click's) usage errors: report them as user errors, not as exit 2.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            return EXIT_USER_ERROR
        if _State.debug:
            traceback.print_exc()
        err_console.print(
            f"[red]internal error:[/red] {type(exc).__name__}: {escape(str(exc))} (run with --debug for the traceback and"
            " report it)",
            soft_wrap=True,
        )
        return EXIT_INTERNAL_ERROR
    return int(result) if isinstance(result, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
