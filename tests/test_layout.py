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


def modules(*packages: str, suffix: str = ".py") -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob(f"*{suffix}"))


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


def test_an_installed_toolkit_has_its_c_sources() -> None:
    """Every C source a library package compiles at run time is package data (``pip install .``
    copies only .py files otherwise, and the gates would fall back to the slower PyTorch path)."""
    import fnmatch
    import re

    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[tool.setuptools.package-data]", 1)
    assert len(section) == 2, "pyproject.toml has no [tool.setuptools.package-data]"
    data = dict(re.findall(r'^"([^"]+)" = \[([^\]]*)\]', section[1], re.M))
    sources = modules(*LIBRARY, suffix=".c")
    assert sources, "no C sources found: is the layout test looking in the right place?"
    for source in sources:
        package = ".".join(source.parent.relative_to(ROOT).parts)
        patterns = re.findall(r'"([^"]+)"', data.get(package, ""))
        assert any(fnmatch.fnmatch(source.name, p) for p in patterns), source
