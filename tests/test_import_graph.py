"""The package's import graph, read from the source with `ast`: arrows go one way and never close a circle.

The core (`spikereg_deploy/` outside `cli/`) must not import a stage or the CLI anywhere, not even lazily inside a
function or for type checking: stages import the core, and only the CLI loads a stage. Among module-level imports
(what runs when a module is imported; `if TYPE_CHECKING:` blocks excluded) no module may reach itself again.
"""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: package name -> folder, as pyproject's [tool.setuptools.package-dir] installs them
PACKAGE_DIRS = {
    "spikereg_deploy": ROOT / "spikereg_deploy",
    "spikereg_deploy.training": ROOT / "training",
    "spikereg_deploy.export": ROOT / "export",
    "spikereg_deploy.simulators": ROOT / "simulators",
}
STAGES_AND_CLI = ("spikereg_deploy.training", "spikereg_deploy.export", "spikereg_deploy.simulators",
                  "spikereg_deploy.cli")


def _modules() -> dict[str, Path]:
    """Every first-party module by dotted name (a package by its __init__.py)."""
    modules: dict[str, Path] = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join([package, *parts])
            if package == "spikereg_deploy" and name.startswith(tuple(f"{p}." for p in STAGES_AND_CLI[:3])):
                continue  # not installed from here
            modules[name] = path
    return modules


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, module_level_only: bool) -> set[str]:
    """Dotted names a module imports (each `from X import y` also as X.y, in case y is a submodule).

    `module_level_only`: what runs on import, i.e. neither function bodies nor `if TYPE_CHECKING:` blocks.
    """
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            skipped = (isinstance(child, ast.If) and _is_type_checking(child)) or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if module_level_only and skipped:
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in child.names)
            visit(child)

    visit(tree)
    return found


def _first_party(targets: set[str]) -> set[str]:
    """Resolve imported names to modules of this package, with the parent packages an import runs."""
    out = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i])
            if candidate in MODULES:
                out.add(candidate)
    return out


def _is_core(name: str) -> bool:
    return name.startswith("spikereg_deploy") and not name.startswith(STAGES_AND_CLI)


def test_the_scan_sees_the_packages():
    assert {"spikereg_deploy.mapping.plan", "spikereg_deploy.energy.loihi", "spikereg_deploy.cli.run_cli",
            "spikereg_deploy.simulators.run_folder", "spikereg_deploy.export.export_model"} <= set(MODULES)
    # and it does see a stage import where there is one: the CLI loads stages lazily
    assert "spikereg_deploy.simulators.run_folder" in _first_party(_imports("spikereg_deploy.cli.common", False))


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _is_core(n)))
def test_core_imports_no_stage_and_no_cli(name):
    bad = sorted(m for m in _first_party(_imports(name, module_level_only=False)) if m.startswith(STAGES_AND_CLI))
    assert not bad, f"{name} imports {bad}"


def test_energy_imports_no_mapping():
    """mapping.report prices its counts with energy.loihi, so energy must not import mapping back."""
    for name in (n for n in MODULES if n.startswith("spikereg_deploy.energy")):
        bad = sorted(m for m in _first_party(_imports(name, False)) if m.startswith("spikereg_deploy.mapping"))
        assert not bad, f"{name} imports {bad}"


def test_no_import_cycle():
    graph = nx.DiGraph()
    for name in MODULES:
        graph.add_node(name)
        graph.add_edges_from((name, dep) for dep in _first_party(_imports(name, True)) if dep != name)
    # A module importing its own parent package is how Python imports work, not a circle: drop those edges.
    graph.remove_edges_from([(a, b) for a, b in list(graph.edges) if a.startswith(b + ".")])
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_cycle_detection_finds_a_planted_cycle(tmp_path, monkeypatch):
    """The check can fail: two modules importing each other at module level form a cycle it reports."""
    (tmp_path / "a.py").write_text("from spikereg_deploy import b\n")
    (tmp_path / "b.py").write_text("import spikereg_deploy.a\n")
    monkeypatch.setitem(MODULES, "spikereg_deploy.a", tmp_path / "a.py")
    monkeypatch.setitem(MODULES, "spikereg_deploy.b", tmp_path / "b.py")
    with pytest.raises(AssertionError, match="import cycles"):
        test_no_import_cycle()
