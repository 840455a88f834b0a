"""Ray, for the commands that scale out (``ferry upscale --ray``, ``ferry serve --ray``): the
address a user gives, the connection, and Ray's errors as one line.

Ray is optional (``pip install 'ferry[ray]'``) and imported only here and in the modules that run
on it, inside their functions: ``import ferry`` and every other command work without it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

from ferry.errors import FerryError, MissingDependencyError, UserError, first_line

RAY_HINT = "ray is not installed: pip install 'ferry[ray]'"
#: what ``--ray`` takes, for --help and error messages
ADDRESS_HELP = (
    "local (a Ray instance started in this process), auto (RAY_ADDRESS, or the cluster running on this machine),"
    " HOST:PORT (a head node's GCS, as `ray start --head` prints it) or ray://HOST:PORT (Ray Client)"
)
_HOST_PORT = re.compile(r"(?:ray://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>[0-9]{1,5})")


def require(*parts: str) -> None:
    """Raise :class:`MissingDependencyError` unless ray and the named parts (``data``, ``serve``) import.

    Raises:
        MissingDependencyError: "ray is not installed: pip install 'ferry[ray]'".
    """
    from ferry.registry import importable

    if not importable("ray"):
        raise MissingDependencyError(RAY_HINT)
    for part in parts:
        try:
            __import__(f"ray.{part}")
        except ImportError as exc:  # ray without its data or serve extra (pyarrow, fastapi...)
            raise MissingDependencyError(f"ray.{part} cannot be imported ({first_line(exc)}): {RAY_HINT}") from exc


def check_address(address: str) -> str:
    """``address`` when it is one ``--ray`` takes (see :data:`ADDRESS_HELP`).

    Raises:
        UserError: anything else.
    """
    if address in ("local", "auto"):
        return address
    match = _HOST_PORT.fullmatch(address)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise UserError(f"--ray {address!r}: give {ADDRESS_HELP}")
    return address


def _reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse a HOST:PORT nothing listens on: Ray would wait on it for minutes and then exit the
    process instead of raising."""
    match = _HOST_PORT.fullmatch(address)
    if match is None:
        return
    host, port = match["host"].strip("[]"), int(match["port"])
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise UserError(
            f"no Ray cluster answers at {address} ({exc.strerror or first_line(exc)}): start one there with"
            " `ray start --head`, or give --ray local"
        ) from None


@contextlib.contextmanager
def connected(address: str) -> Iterator[None]:
    """Connect to Ray at ``address`` for the duration of the block (or start a local instance for
    ``local``), and disconnect after; a connection this process already has is used as it is.

    Raises:
        MissingDependencyError: ray is not installed.
        UserError: a malformed address, or no cluster there.
    """
    require()
    import ray

    if ray.is_initialized():
        yield
        return
    check_address(address)
    _reachable(address)
    # (an instance ray.init starts reports no usage statistics: Ray turns them off for it)
    options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address == "local":
        options["include_dashboard"] = False
    main = threading.current_thread() is threading.main_thread()
    on_sigterm = signal.getsignal(signal.SIGTERM) if main else None
    # Ray notes each time that the instance it starts wants its token (in ~/.ray): nothing to act on
    with quieter({"ray._private.authentication.authentication_token_setup": logging.ERROR}):
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError, SystemExit) as exc:
            raise UserError(f"cannot connect to Ray at {address}: {_connect_message(exc)}") from None
    if on_sigterm is not None:
        # Ray's core installs a crash handler for SIGTERM that prints a stack and aborts: SIGTERM
        # stops the command as before (ferry's CLI: cleanly, exit 143)
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def quieter(levels: dict[str, int]) -> Iterator[None]:
    """Ray's loggers at ``levels`` (name: level) for the block, as they were after: Ray logs each
    step at INFO, where ferry prints its own progress."""
    saved = {name: logging.getLogger(name).level for name in levels}
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _connect_message(exc: BaseException) -> str:
    """Why ``ray.init`` failed, in a line: a missing token (Ray reports it in a traceback's text, two
    exceptions deep), else the innermost error."""
    cause: BaseException | None = exc
    while cause is not None:
        if type(cause).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(cause):
            return (
                "the cluster wants its token: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH)"
                " as on its nodes; see https://docs.ray.io/en/latest/ray-security/token-auth.html"
            )
        cause = cause.__cause__
    return first_line(exc, root=True)


def ray_message(exc: BaseException) -> str:
    """A Ray error as one line: the ferry error it carries (see :func:`ferry_error`), else its first line."""
    carried = ferry_error(exc)
    return str(carried) if carried is not None else first_line(exc)


_FERRY_ERROR = re.compile(r"^ferry\.errors\.(?P<kind>\w+): (?P<message>.+)$", re.M)


def ferry_error(exc: BaseException) -> FerryError | None:
    """The ferry error a Ray task, actor or replica raised, when that is what ``exc`` reports: carried
    as its cause (a failed task), or named in its message (an actor whose constructor failed, whose
    error reaches the caller only as text)."""
    cause: object = exc
    while isinstance(cause, BaseException):
        if isinstance(cause, FerryError) and type(cause).__module__.startswith("ferry."):
            return cause  # not Ray's copy, which subclasses it but holds the whole traceback as its text
        cause = getattr(cause, "cause", None)
    return error_in_text(str(exc))


def error_in_text(text: str) -> FerryError | None:
    """The last ferry error a traceback's text names (``ferry.errors.UserError: ...``), rebuilt."""
    from ferry import errors

    found = list(_FERRY_ERROR.finditer(text))
    if not found:
        return None
    kind = getattr(errors, found[-1]["kind"], None)
    if not (isinstance(kind, type) and issubclass(kind, FerryError)):
        kind = UserError
    return kind(found[-1]["message"].strip())


def cluster_cpus() -> float:
    """The CPUs of the connected cluster (all its nodes)."""
    import ray

    return float(ray.cluster_resources().get("CPU", 0.0))


@contextlib.contextmanager
def local_cluster(nodes: int = 2, cpus: int = 1, *, timeout_s: float = 120.0) -> Iterator[str]:
    """A Ray cluster of ``nodes`` node processes on this machine (``ray start``: a head and
    ``nodes - 1`` more, ``cpus`` CPUs each, a small object store, no dashboard, no usage reports,
    its own token), for trying and measuring scale-out without more machines; yields its
    ``HOST:PORT`` and stops every node after. This process gets the token for the block.

    Raises:
        MissingDependencyError: ray is not installed.
        UserError: a node did not start in ``timeout_s`` (with the end of its log).
    """
    import secrets
    import shutil
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    require()
    # short: the unix sockets Ray makes under it must stay below 107 bytes
    root = Path(tempfile.mkdtemp(prefix="ferry-ray-"))
    if not _TOKEN:  # one per process: Ray keeps the first token it reads
        _TOKEN.append(secrets.token_hex(32))
    env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": _TOKEN[0]}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    if "ray._raylet" in sys.modules:  # Ray read its settings when it was imported: again, with the token
        sys.modules["ray._raylet"].Config.initialize("")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    address = f"127.0.0.1:{port}"
    ray_cmd = [str(Path(sys.executable).with_name("ray")), "start", "--block", "--disable-usage-stats"]
    ray_cmd += ["--num-cpus", str(cpus), "--object-store-memory", str(100 << 20)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for k in range(nodes):
            where = ["--head", "--port", str(port), "--include-dashboard=false"] if k == 0 else ["--address", address]
            log = root / f"node{k}.log"
            with log.open("wb") as out:
                cmd = [*ray_cmd, *where, "--temp-dir", str(root / f"node{k}")]
                procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
            deadline = time.monotonic() + timeout_s
            while _alive_nodes(address) <= k:
                if time.monotonic() > deadline or procs[-1].poll() is not None:
                    tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                    raise UserError(f"Ray node {k} did not start within {timeout_s:g} s: {' | '.join(tail)}")
                time.sleep(0.3)
        yield address
    finally:
        _stop(procs)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)


_TOKEN: list[str] = []


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _alive_nodes(address: str) -> int:
    import ray

    if ray.is_initialized():
        raise UserError("local_cluster() connects to the cluster it starts: call it before ray.init()")
    if not _listens(int(address.rsplit(":", 1)[1])):
        return 0
    ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    try:
        return sum(1 for n in ray.nodes() if n.get("Alive"))
    finally:
        ray.shutdown()


def _stop(procs: list[Any]) -> None:
    """End the nodes: each ``ray start --block`` leads a process group of its own, with the node's
    raylet and store (its workers end with the raylet). SIGTERM, then SIGKILL after 5 s: a head
    node takes longer to end by itself."""
    import subprocess

    for proc in reversed(procs):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in reversed(procs):
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
