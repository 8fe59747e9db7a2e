"""The package's shape, read from its source: layers that only import downwards, no import
circles, ``js`` only at the browser edge, and public names that exist.

Imports are read with :mod:`ast`, so imports under ``if TYPE_CHECKING:`` count too: a type-only
circle still ties two modules together for a reader.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "py_src"
PACKAGE = "p2p_transport"

# Each layer may import its own modules and those of the layers listed after it; the package's
# own small helpers (timing, checks, guard, errors) sit below every layer.
LAYERS = ("browser", "rollback", "session", "protocol", "wire")
BASE_MODULES = ("timing", "errors", "_checks", "_guard")
# Only the browser edge may touch the browser's objects.
BROWSER_ONLY = ("js", "pyodide")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted((SOURCE / PACKAGE).rglob("*.py"))}


def imported(name: str) -> set[str]:
    """Every top-level-absolute module ``name`` imports (``from a.b import c`` gives ``a.b.c``
    when that is a module, else ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def layer_of(name: str) -> str | None:
    """The layer a package module belongs to; None for the package root and its helpers."""
    parts = name.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return None


def test_the_source_tree_is_found() -> None:
    assert f"{PACKAGE}.session.session" in MODULES
    assert f"{PACKAGE}.wire.codec" in MODULES


@pytest.mark.parametrize("name", [n for n in MODULES if layer_of(n) is not None])
def test_a_layer_imports_only_itself_and_the_layers_below(name: str) -> None:
    layer = layer_of(name)
    assert layer is not None
    allowed = set(LAYERS[LAYERS.index(layer) :])
    for target in imported(name):
        if not target.startswith(f"{PACKAGE}.") and target != PACKAGE:
            continue
        assert target != PACKAGE, f"{name} imports the package root, which imports every layer"
        target_layer = layer_of(target)
        if target_layer is None:
            assert target.split(".")[1] in BASE_MODULES, f"{name} imports {target}"
        else:
            assert target_layer in allowed, f"{name} ({layer}) imports {target} ({target_layer})"


@pytest.mark.parametrize("name", list(MODULES))
def test_only_the_browser_edge_imports_js(name: str) -> None:
    if layer_of(name) == "browser":
        return
    for target in imported(name):
        assert target.split(".")[0] not in BROWSER_ONLY, f"{name} imports {target}"


def test_no_two_modules_import_each_other_even_through_others() -> None:
    graph = {
        name: {target for target in imported(name) if target in MODULES and target != name}
        for name in MODULES
    }
    # A package's __init__ gathering its own modules is not a circle a reader has to follow.
    for name, targets in graph.items():
        if MODULES[name].name == "__init__.py":
            targets.clear()

    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                circles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert circles == []


@pytest.mark.parametrize(
    "package",
    [PACKAGE] + [f"{PACKAGE}.{layer}" for layer in LAYERS if layer != "browser"],
)
def test_each_public_name_is_there(package: str) -> None:
    module = importlib.import_module(package)
    names = module.__all__
    assert len(set(names)) == len(names)
    for name in names:
        if name == "BrowserTransport":
            continue  # imports ``js``: checked in the browser tests
        assert getattr(module, name) is not None, f"{package}.{name}"
