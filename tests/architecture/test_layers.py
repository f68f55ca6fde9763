"""The layering holds: no package imports one above it, the review side reads only the session's
format and the store, no module takes part in an import loop, and every package the tests import
is this checkout's (``config``, ``store``, ``sync``... are generic names another installed
distribution could also use).

The imports are read from the source with ``ast``, so a layer break in a function that no test
runs is found as well.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Lowest first: a package may import its own modules and those of packages before it.
LAYERS = [
    "store",  # age files: knows nothing of video, vitals or sessions
    "supervision",  # keeping a device delivering: knows nothing of what it delivers
    "vitals",  # monitor bytes in, samples out
    "config",  # settings, validated (a monitor's line format and cadence are the vitals' own)
    "sync",  # the one clock; the vitals board
    "capture",  # cameras, audio, overlay, encoders, segments
    "control",  # the bedside button and lamp, the control socket
    "session",  # the session's format and life
    "collect",  # collection: closed files into the archive (S3)
    "review",  # the review side: reads sessions
    "recorder",  # the daemon: wiring and lifecycle
    "cli",  # the operator's tools
]
RANK = {name: i for i, name in enumerate(LAYERS)}
# The review workstation loads these and nothing else of the project.
REVIEW_MAY_IMPORT = ("session.layout", "store", "review")


def project_modules() -> Iterator[tuple[str, Path]]:
    for package in LAYERS:
        folder = ROOT / package
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


MODULES = dict(project_modules())


def imports_of(path: Path, *, top_level_only: bool) -> set[str]:
    """The project modules ``path`` imports (all of them, or only those run at import time)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()

    def visit(node: ast.AST, deferred: bool) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            deferred = True
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            deferred = True
        if not (deferred and top_level_only):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names]
                if not all(name in MODULES for name in names):  # not only submodules
                    names.append(node.module)
            for name in names:
                if name.split(".")[0] in RANK and name in MODULES:
                    found.add(name)
        for child in ast.iter_child_nodes(node):
            visit(child, deferred)

    visit(tree, False)
    return found


def package_of(module: str) -> str:
    return module.split(".")[0]


def test_the_layer_list_covers_every_package_of_the_distribution() -> None:
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert on_disk == set(LAYERS)
    assert len(MODULES) > 50  # the walk found the code


def test_no_package_imports_a_package_above_it() -> None:
    breaks = [
        f"{module} imports {target}"
        for module, path in MODULES.items()
        for target in imports_of(path, top_level_only=False)
        if RANK[package_of(target)] > RANK[package_of(module)]
    ]
    assert breaks == [], "\n".join(breaks)


def test_the_review_side_reads_only_the_session_format_and_the_store() -> None:
    outside = [
        f"{module} imports {target}"
        for module, path in MODULES.items()
        if package_of(module) == "review"
        for target in imports_of(path, top_level_only=False)
        if not any(target == allowed or target.startswith(allowed + ".") for allowed in REVIEW_MAY_IMPORT)
    ]
    assert outside == []


def test_the_session_format_imports_only_the_store() -> None:
    targets = imports_of(MODULES["session.layout"], top_level_only=False)
    assert {package_of(t) for t in targets} <= {"store"}


def test_no_module_takes_part_in_an_import_loop() -> None:
    graph = {m: imports_of(p, top_level_only=True) - {m} for m, p in MODULES.items()}
    loops: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                loops.append([*path[path.index(target):], target])
            elif target not in state:
                walk(target)
        path.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module)
    assert loops == [], "\n".join(" -> ".join(loop) for loop in loops)


@pytest.mark.parametrize("package", LAYERS)
def test_each_package_is_this_checkouts_own(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__file__ is not None, f"{package} is a namespace package, not ours"
    assert Path(module.__file__).resolve().parent == ROOT / package
