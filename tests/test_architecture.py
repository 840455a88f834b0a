"""The floor plan holds: generic code never reaches into an application, no import cycles, short
stage functions (see docs/architecture.md).

Imports are read from the source (function-level imports included; imports only for type
checkers excluded), so a shortcut hidden inside a function is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
#: Applications built on the generic stages; generic modules never import them.
APPLICATIONS = ("ferry.superres",)
#: Layers allowed to know every application: the command line (it offers their commands) and the
#: curated public API.
UI = ("ferry.cli", "ferry")
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    mods = {}
    for path in (SRC / "ferry").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks (never run)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                skipped |= {id(n) for n in ast.walk(inner)}
    return skipped


def _resolve(name: str) -> str:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports_of(module: str) -> set[str]:
    """The ferry modules ``module`` imports at run time, with the packages that importing them runs."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("ferry")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.startswith("ferry"):
                found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    own_packages = {module.rsplit(".", k)[0] for k in range(module.count(".") + 1)}
    result: set[str] = set()
    for name in found:
        target = _resolve(name)
        # Importing a.b.c runs a.b's __init__ first: that is an edge too (but not the root
        # package, nor the importer's own packages, which are already running).
        while target and target != "ferry":
            if target not in own_packages:
                result.add(target)
            target = target.rpartition(".")[0]
    return result


def _generic(module: str) -> bool:
    return module not in UI and not module.startswith(("ferry.cli.", *(f"{a}." for a in APPLICATIONS), *APPLICATIONS))


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _generic(m)))
def test_generic_modules_never_import_an_application(module: str) -> None:
    bad = sorted(i for i in imports_of(module) if i.startswith(APPLICATIONS))
    assert not bad, f"{module} imports {bad}: go through ferry.tasks instead"


def test_no_import_cycles() -> None:
    graph = {m: imports_of(m) for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_function_level_imports(tmp_path: Path) -> None:
    """The rules above would be empty words if hidden imports slipped through."""
    assert "ferry.onnx_file" in imports_of("ferry.run")
    assert "ferry.superres.upscale" in imports_of("ferry.superres.evaluate")
    assert "ferry.optimize" not in imports_of("ferry.tasks")  # only for type checkers


def test_no_string_checks_for_an_application_in_generic_code() -> None:
    offenders = []
    for module, path in MODULES.items():
        if not _generic(module):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                text = ast.unparse(node)
                if "super-resolution" in text:
                    offenders.append(f"{module}: {text}")
    assert not offenders


def test_functions_read_like_a_table_of_contents() -> None:
    long = []
    for module, path in MODULES.items():
        if module.startswith("ferry.cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert not long, f"split these (at most {MAX_FUNCTION_LINES} lines): {long}"


def test_the_public_api_is_importable_and_lazy() -> None:
    """Every public name resolves; ``import ferry`` alone loads neither torch nor onnx."""
    import subprocess
    import sys

    import ferry

    missing = [n for n in ferry.__all__ if getattr(ferry, n, None) is None]
    assert not missing
    import ferry.export  # binding the stage module must not hide the stage function

    assert callable(ferry.export) and callable(ferry.verify) and callable(ferry.package)
    code = "import sys, ferry; print(sorted(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_command_line_starts_without_the_heavy_libraries() -> None:
    """``ferry --help``/``--version`` build the whole app: no torch, onnx or runtime on the way."""
    import subprocess
    import sys

    code = (
        "import sys; from ferry.cli import app; "
        "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'openvino') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
