"""The house rules a newcomer reads off the tree (ARCHITECTURE.md), checked so they stay true.

* The four folders install as ``iceshelf.tables``, ``iceshelf.catalog``, ``iceshelf.compaction`` and
  ``iceshelf.sql``; nothing imports them by their bare folder names (``tables`` is PyTables' name).
* Imports point downward only (import-linter's layer contracts in ``pyproject.toml``) and no module
  takes part in an import circle, ``TYPE_CHECKING`` imports included (grimp parses every import).
* HTTP (fastapi, starlette, uvicorn) lives only in ``catalog/``; argparse and rich only in ``catalog/cli/``.
* ``bench/`` never imports ``tests/``.
* The wheel holds every module and file of the four packages.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tables", "catalog", "compaction", "sql")


def _python_files(*folders: str) -> list[Path]:
    return [p for folder in folders for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts]


def _imported_names(path: Path) -> list[tuple[int, str]]:
    """Every module an ``import`` or ``from … import`` in ``path`` names (relative imports resolved to ``.``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def _top(name: str) -> str:
    return name.split(".")[0]


def test_no_bare_top_level_imports() -> None:
    bare = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in _python_files(*PACKAGES, "tests", "bench")
        for line, name in _imported_names(path)
        if _top(name) in PACKAGES
    ]
    assert not bare, "import the iceshelf.* names, never the folders:\n" + "\n".join(bare)


@pytest.mark.parametrize(
    ("modules", "allowed", "where"),
    [
        (("fastapi", "starlette", "uvicorn"), ("catalog",), "catalog/ (the only home of HTTP)"),
        (("argparse", "rich"), ("catalog/cli",), "catalog/cli/ (the only home of the CLI)"),
    ],
)
def test_http_and_cli_stay_in_catalog(modules: tuple[str, ...], allowed: tuple[str, ...], where: str) -> None:
    outside = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in _python_files(*PACKAGES)
        if not any(path.is_relative_to(ROOT / a) for a in allowed)
        for line, name in _imported_names(path)
        if _top(name) in modules
    ]
    assert not outside, f"{', '.join(modules)} only in {where}:\n" + "\n".join(outside)


def test_bench_never_imports_tests() -> None:
    upward = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in _python_files("bench")
        for line, name in _imported_names(path)
        if _top(name) == "tests"
    ]
    assert not upward, "bench/ must not depend on tests/:\n" + "\n".join(upward)


def test_imports_point_downward() -> None:
    """import-linter's contracts from ``pyproject.toml``: the layers of the whole tree, of tables/, of compaction/."""
    run = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout, run.stdout


def import_circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in edges.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return circles


def test_the_circle_finder_finds_circles() -> None:
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle() -> None:
    graph = grimp.build_graph(*(f"iceshelf.{p}" for p in PACKAGES), include_external_packages=False)
    edges = {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}
    assert import_circles(edges) == []


def _declared_packages() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]


def test_every_package_is_declared() -> None:
    on_disk = sorted(
        "iceshelf." + ".".join(init.parent.relative_to(ROOT).parts)
        for folder in PACKAGES
        for init in (ROOT / folder).rglob("__init__.py")
    )
    assert sorted(_declared_packages()) == on_disk


def test_the_wheel_holds_every_file(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("iceshelf-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "iceshelf/" + path.relative_to(ROOT).as_posix()
        for folder in PACKAGES
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    assert not any(name.split("/")[0] in PACKAGES for name in names), "the wheel must not install bare top-level packages"
