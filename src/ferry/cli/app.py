"""The wiring of the ``ferry`` command line: the app, its commands, and the one place where errors
become exit codes and one-line messages.

Exit codes: 0 success, 1 user error (bad input, missing file, unknown name, a file the operating
system would not read or write), 2 verification or quality threshold failed, 3 internal error (a bug
in ferry), 130 interrupted (SIGINT, Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Iterator
from types import FrameType
from typing import Annotated, Any, TextIO

import typer
from rich.markup import escape

from ferry._io import command_inputs
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
from ferry.cli.serve import serve_cmd
from ferry.cli.train import eval_cmd, train_cmd, zoo_app
from ferry.cli.upscale import upscale_cmd
from ferry.cli.verify import verify_cmd
from ferry.cli.view import view_cmd
from ferry.errors import EXIT_INTERNAL_ERROR, EXIT_USER_ERROR, FerryError, FerryWarning, describe_os_error

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
app.command("serve")(serve_cmd)
app.command("train")(train_cmd)
app.command("eval")(eval_cmd)
app.add_typer(zoo_app, name="zoo")


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that the same clean-up runs."""


class _Signals:
    """The signal that stopped the command, if one did (typer turns KeyboardInterrupt into a plain
    exit code 130, so the handler records which signal it was)."""

    def __init__(self) -> None:
        self.received: int | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        raise _Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """SIGINT and SIGTERM handled alike while the command runs (where they are at their
        defaults, and only in the main thread: an embedding application keeps its own)."""
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
                if signal.getsignal(signum) == default:  # SIG_DFL may come back as a plain 0
                    previous[signum] = signal.signal(signum, self.handle)
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """ferry's own warnings (:class:`FerryWarning`) as one ``warning:`` line each, every time."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", FerryWarning)
        default_show = warnings.showwarning

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            if issubclass(category, FerryWarning):
                err_console.print(f"[yellow]warning:[/yellow] {escape(str(message))}", soft_wrap=True)
            else:
                default_show(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (errors become one line on stderr)."""
    args = list(sys.argv[1:] if argv is None else argv)
    _State.debug = "--debug" in args
    signals = _Signals()
    with signals.installed(), _one_line_warnings(), command_inputs():
        code = _run(args)
    if signals.received is not None:
        # what was half-written is gone (atomic writes clean up); a rerun resumes
        terminated = signals.received == signal.SIGTERM
        err_console.print("terminated" if terminated else "interrupted")
        return 143 if terminated else 130
    return code


def _run(args: list[str]) -> int:
    """The command's exit code: one place where exceptions become codes and one-line messages."""
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
    except OSError as exc:
        if exc.errno is None:
            return _internal_error(exc)
        if _State.debug:
            traceback.print_exc()
        err_console.print(f"[red]error:[/red] {escape(describe_os_error(exc))}", soft_wrap=True)
        return EXIT_USER_ERROR
    except Exception as exc:
        # typer's (vendored click's) usage errors: report them as user errors, not as exit 2.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            return EXIT_USER_ERROR
        return _internal_error(exc)
    return int(result) if isinstance(result, int) else 0


def _internal_error(exc: Exception) -> int:
    if _State.debug:
        traceback.print_exc()
    err_console.print(
        f"[red]internal error:[/red] {type(exc).__name__}: {escape(str(exc))} (run with --debug for the traceback and"
        " report it)",
        soft_wrap=True,
    )
    return EXIT_INTERNAL_ERROR


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
