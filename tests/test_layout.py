"""The layout's rules (issue 9, shared/DESIGN.md), checked on the source itself: which package may
import which, where Typer and Rich may appear, and how large a library file may grow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("core", "classify", "augment", "study")
PACKAGES = (*LIBRARY, "commands", "cli")
# What each library package must never import (arrows point down only:
# commands -> study -> augment -> classify -> core).
FORBIDDEN = {
    "core": {"classify", "augment", "study", "commands", "cli"},
    "classify": {"augment", "study", "commands", "cli"},
    "augment": {"study", "commands", "cli"},
    "study": {"commands", "cli"},
}
# augment/ may use classify/ only for the classifier that filters synthetic images.
AUGMENT_MAY_USE = {"classify.checkpoint"}
MAX_LINES = 320  # "no library file over ~300 lines"


def modules(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module name ``path`` imports, at module level or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def package_of(path: Path) -> str:
    return path.relative_to(ROOT).parts[0]


@pytest.mark.parametrize("path", modules(*LIBRARY), ids=lambda p: str(p.relative_to(ROOT)))
def test_library_imports_point_down(path: Path) -> None:
    package = package_of(path)
    bad = {name for name in imported(path) if name.split(".")[0] in FORBIDDEN[package]}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
    if package == "augment":
        classify = {name for name in imported(path) if name.split(".")[0] == "classify"}
        assert classify <= AUGMENT_MAY_USE, f"{path.relative_to(ROOT)} imports {sorted(classify)}"


def test_typer_only_in_the_cli_layer() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in modules(*LIBRARY)
        if any(name.split(".")[0] == "typer" for name in imported(p))
    ]
    assert offenders == []


def test_rich_only_in_progress_displays_and_commands() -> None:
    allowed = {ROOT / "core" / "progress.py"}
    offenders = [
        str(p.relative_to(ROOT))
        for p in modules(*LIBRARY)
        if p not in allowed and any(name.split(".")[0] == "rich" for name in imported(p))
    ]
    assert offenders == []


def test_library_files_stay_small() -> None:
    sizes = {p: len(p.read_text(encoding="utf-8").splitlines()) for p in modules(*LIBRARY)}
    big = {str(p.relative_to(ROOT)): n for p, n in sizes.items() if n > MAX_LINES}
    assert big == {}


def test_no_commands_module_outside_the_cli_layer() -> None:
    """Commands are found by the explicit list in cli.py, never by a file-name convention."""
    stray = [str(p.relative_to(ROOT)) for p in modules(*LIBRARY) if p.stem.startswith("commands")]
    assert stray == []


def test_an_installed_toolkit_has_every_package() -> None:
    """pyproject's package list holds every package the CLI imports (``pip install .`` without
    ``commands`` gave an installed ``cli`` that failed with "No module named commands")."""
    import fnmatch
    import re

    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # no tomllib on Python 3.10

    def listed(key: str) -> list[str]:
        found = re.search(rf"^{key} = \[([^\]]*)\]", text, re.M)
        assert found, key
        return re.findall(r'"([^"]+)"', found.group(1))

    include, modules_ = listed("include"), listed("py-modules")
    for package in PACKAGES:
        if (ROOT / f"{package}.py").is_file():
            assert package in modules_, package
            continue
        for init in (ROOT / package).rglob("__init__.py"):
            name = ".".join(init.parent.relative_to(ROOT).parts)
            assert any(fnmatch.fnmatch(name, pattern) for pattern in include), name


# --- import cycles between modules --------------------------------------------------------------


def project_modules() -> list[Path]:
    """Every module of the project: the library packages, commands/ and cli.py."""
    return [*modules(*LIBRARY, "commands"), ROOT / "cli.py"]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(paths: list[Path], root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the modules among ``paths`` it imports, at module level or inside functions
    (``from pkg import name`` counts ``pkg.name`` when that is a module; relative imports are
    resolved). A parent package's ``__init__`` is an edge only where it is named."""
    names = {module_name(p, root): p for p in paths}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    head = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*head, *([base] if base else [])])
                targets.add(base)
                targets.update(f"{base}.{alias.name}" for alias in node.names)
        graph[name] = {t for t in targets if t in names and t != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles of ``graph``: its strongly connected components of two or more modules (Tarjan
    1972), each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_no_import_cycle_between_modules() -> None:
    """Arrows point one way between modules too (shared/DESIGN.md), function-local imports
    included: a cycle hidden inside a function is still a cycle a reader has to untangle."""
    graph = import_graph(project_modules())
    assert len(graph) > 100 and "study.pipeline.arms" in graph["study.pipeline.steps"]
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_hidden_cycle(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import helper\n")
    (package / "b.py").write_text("def helper():\n    from pkg import a  # the hidden arrow back\n")
    (package / "c.py").write_text("from . import a\n")  # into the cycle, not part of it
    graph = import_graph(sorted(package.glob("*.py")), tmp_path)
    assert graph == {
        "pkg": set(),
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg", "pkg.a"},
        "pkg.c": {"pkg", "pkg.a"},
    }
    assert import_cycles(graph) == [["pkg.a", "pkg.b"]]
    made = {"x": {"y"}, "y": {"z"}, "z": {"x"}, "w": {"x"}, "u": {"v"}, "v": {"u"}}
    assert import_cycles(made) == [["u", "v"], ["x", "y", "z"]]
    assert import_cycles({"x": {"y"}, "y": set()}) == []
