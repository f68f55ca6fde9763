"""The family registry and the vitals import graph: one explicit list, and no import cycle.

Each module is imported first, alone, in a fresh interpreter: a cycle that only resolves when some
other module happens to be imported before shows up there as an ImportError, whatever order this
test process imported things in.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import get_args

import pytest

from config.models import MonitorConfig
from vitals.families import PARSERS, make_parser
from vitals.parser import MonitorParser

REPO_ROOT = Path(__file__).resolve().parents[2]
VITALS_DIR = REPO_ROOT / "vitals"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


VITALS_MODULES = sorted(_module_name(path) for path in VITALS_DIR.rglob("*.py"))


def _fresh_python(code: str) -> str:
    """Run ``code`` in a new interpreter at the repository root; its stdout, or the test fails."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- each module on its own -----------------------------------------------------------------------

_IMPORT_ALONE = """
import importlib, sys
module = importlib.import_module(sys.argv[1])
missing = [name for name in getattr(module, "__all__", ()) if not hasattr(module, name)]
assert not missing, f"__all__ names what the module lacks: {missing}"
"""


@pytest.mark.parametrize("module", VITALS_MODULES)
def test_each_vitals_module_imports_first_and_alone(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALONE, module],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def _vitals_imports(path: Path) -> Iterator[str]:
    """The vitals modules ``path`` imports, wherever the import statement sits."""
    known = set(VITALS_MODULES)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from vitals.x import y`` imports vitals.x, and vitals.x.y when that is a module.
            targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            # Importing a.b.c runs a and a.b first.
            parts = target.split(".")
            for depth in range(1, len(parts) + 1):
                name = ".".join(parts[:depth])
                if name in known:
                    yield name


def _find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for nxt in sorted(graph.get(node, ())):
            cycle = visit(nxt)
            if cycle is not None:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle is not None:
            return cycle
    return None


def test_the_vitals_import_graph_has_no_cycle() -> None:
    graph = {
        _module_name(path): set(_vitals_imports(path)) - {_module_name(path)}
        for path in VITALS_DIR.rglob("*.py")
    }
    assert _find_cycle(graph) is None, " → ".join(_find_cycle(graph) or [])


# -- the contract stays below the families --------------------------------------------------------


def test_the_parser_contract_imports_no_family() -> None:
    loaded = json.loads(
        _fresh_python("import json, sys; import vitals.parser; print(json.dumps(sorted(sys.modules)))")
    )
    family_modules = {cls.__module__ for cls in PARSERS.values()}
    assert family_modules.isdisjoint(loaded), sorted(family_modules & set(loaded))
    assert "vitals.families" not in loaded


# -- the registry ---------------------------------------------------------------------------------


def _concrete_parsers_in_vitals() -> set[type[MonitorParser]]:
    for module in VITALS_MODULES:
        importlib.import_module(module)
    found: set[type[MonitorParser]] = set()
    pending = list(MonitorParser.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        # Subclasses that tests define live outside the package and are not families.
        if cls.__module__.startswith("vitals.") and not inspect.isabstract(cls):
            found.add(cls)
    return found


def test_the_registry_lists_exactly_the_parsers_the_package_defines() -> None:
    assert set(PARSERS.values()) == _concrete_parsers_in_vitals()
    assert len(set(PARSERS.values())) == len(PARSERS), "one class under two names"


@pytest.mark.parametrize("protocol", sorted(PARSERS))
def test_each_family_is_listed_under_its_own_protocol_name(protocol: str) -> None:
    assert PARSERS[protocol].protocol == protocol


def test_configuration_accepts_exactly_the_listed_protocols() -> None:
    # config sits below vitals and spells the names out rather than importing the families.
    assert set(get_args(MonitorConfig.model_fields["protocol"].annotation)) == set(PARSERS)


def test_an_unknown_protocol_is_refused_with_the_known_ones_named() -> None:
    with pytest.raises(ValueError, match=r"unknown monitor protocol 'rs232'.*masimo.*nonin"):
        make_parser("rs232", "monitor")


def test_the_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        PARSERS["masimo"] = MonitorParser  # type: ignore[index]
