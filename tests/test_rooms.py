"""The house's rules, read from the source: which room may import which (the arrows of
docs/ARCHITECTURE.md), no import circles, no top-level `search` / `api` / `indexer` names, rooms whose
__init__ loads nothing, and pyproject's package list matching the folders. Lazy imports (inside
functions) and TYPE_CHECKING imports count like any other: a circle hidden in a function is a circle."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {
    "search": "mmsearch",
    "indexer": "mmsearch.indexer",
    "api": "mmsearch.api",
}  # pyproject's package-dir
GROUND = {
    "config",
    "defaults",
    "errors",
    "hits",
    "user_files",
}  # search/'s own modules: the floor every room stands on
BELOW_API = {
    "public",
    "ground",
    "synth",
    "encode",
    "storage",
    "query",
    "answer",
    "learn",
    "evaluate",
    "indexer",
}
MAY_IMPORT = {
    "ground": {"ground"},
    "synth": {"ground"},
    "encode": {"ground", "synth"},
    "storage": {"ground", "encode"},
    "query": {"ground", "encode", "storage", "learn", "indexer"},
    "learn": {"ground", "synth", "encode", "storage"},
    "answer": {"ground", "encode", "storage", "query"},
    "evaluate": {"ground", "synth", "encode", "storage", "query", "learn"},
    "indexer": {"ground", "encode", "storage"},
    "public": BELOW_API,  # mmsearch/__init__.py: the public names, from wherever they live
    "api": BELOW_API | {"api"},
}


def modules() -> dict[str, Path]:
    """Every module of the package by its import name."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = modules()


def room(module: str) -> str:
    parts = module.split(".")
    if module == "mmsearch":
        return "public"
    if parts[1] in ("api", "indexer"):
        return parts[1]
    return "ground" if parts[1] in GROUND else parts[1]


def imports(module: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the module, wherever it stands; `from package import
    submodule` counts as the submodule."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub if sub in MODULES else base, node.lineno))
    return found


def ours(imported: str) -> str | None:
    """The module of ours an import names (the longest prefix that is one), or None."""
    while imported and imported not in MODULES:
        imported = imported.rpartition(".")[0]
    return imported or None


def test_the_arrows_go_one_way():
    wrong = []
    for module in MODULES:
        for imported, line in imports(module):
            target = ours(imported)
            if target is None or target == module:
                continue
            if room(target) != room(module) and room(target) not in MAY_IMPORT[room(module)]:
                allowed = ", ".join(sorted(MAY_IMPORT[room(module)]))
                wrong.append(f"{module}:{line} imports {target} ({room(module)} may import: {allowed})")
    assert not wrong, "\n".join(wrong)


def test_there_are_no_import_circles():
    edges = {m: {t for i, _ in imports(m) if (t := ours(i)) and t != m} for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(edges)))

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                circles.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    assert not circles, circles


@pytest.mark.parametrize("folder", ["search", "indexer", "api", "tests"])
def test_nothing_imports_the_old_top_level_names(folder: str):
    """`search`, `api` and `indexer` are folders here, never import names: the package is `mmsearch`."""
    old = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            old += [
                f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] in FOLDERS
            ]
    assert not old, old


def test_a_room_says_what_it_owns_and_loads_nothing():
    """A sub-package's __init__ is its docstring (what it owns, what it may import) and nothing else,
    so importing one module of a room (the one-shot search does) loads no other."""
    for module, path in MODULES.items():
        if path.name != "__init__.py" or module in ("mmsearch", "mmsearch.api.cli", "mmsearch.indexer"):
            continue
        tree = ast.parse(path.read_text())
        doc = ast.get_docstring(tree)
        assert doc, f"{path.relative_to(ROOT)} has no docstring"
        assert len(tree.body) == 1, f"{path.relative_to(ROOT)} does more than say what the room owns"
        if room(module) in MAY_IMPORT and room(module) not in ("api", "public") and module.count(".") == 1:
            assert "May import" in doc, f"{path.relative_to(ROOT)} does not say what the room may import"


def test_pyproject_lists_every_package():
    """Every folder ships: packages, and the data folders beside them (model configs, migrations, the
    web page), which setuptools wants listed too."""
    tomllib = pytest.importorskip("tomllib")
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {package: folder for folder, package in FOLDERS.items()}
    folders = set()
    for folder, package in FOLDERS.items():
        for path in [ROOT / folder, *(ROOT / folder).rglob("*")]:
            if path.is_dir() and path.name != "__pycache__":
                folders.add(".".join([package, *path.relative_to(ROOT / folder).parts]))
    assert set(setuptools["packages"]) == folders


def test_the_edges_go_through_the_front_door():
    """No module of api/ reaches past Engine into its store or encoder (the benchmarks measure those
    parts on purpose): what an edge needs is an Engine method, the same for every edge."""
    reached = []
    for module, path in MODULES.items():
        if room(module) != "api" or module.startswith("mmsearch.api.bench"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("store", "encoder"):
                reached.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert not reached, reached
