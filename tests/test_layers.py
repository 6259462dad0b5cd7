"""The layer rule of DESIGN §2, checked on the source with `ast`: arrows only point down.
core/ is pure (standard library and itself, no I/O); nothing below the CLI and the server
imports them; store backends are picked in one place."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "baton"

# Standard-library modules that do I/O (or reach it), and so have no place in core/.
IO_MODULES = {
    "sqlite3",
    "os",
    "subprocess",
    "socket",
    "ssl",
    "select",
    "selectors",
    "signal",
    "shutil",
    "tempfile",
    "io",
    "pathlib",
    "glob",
    "fileinput",
    "urllib",
    "http",
    "asyncio",
    "threading",
    "multiprocessing",
    "concurrent",
    "logging",
    "importlib",
    "platform",
    "sys",
}
IO_CALLS = {"open", "print", "input", "__import__", "exec", "eval"}
UI_PACKAGES = {
    "click",
    "typer",
    "rich",
    "prompt_toolkit",
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, source: str | None = None) -> set[str]:
    """Every module a file imports, relative imports resolved, and `from a import b` also
    counted as `a.b` (b may be a module)."""
    tree = ast.parse(source if source is not None else path.read_text("utf-8"))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def calls(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    return {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }


def files(*folders: str) -> list[Path]:
    out: list[Path] = []
    for folder in folders:
        target = SRC / folder
        if target.suffix == ".py":
            out.append(target)
        elif target.is_dir():
            out.extend(sorted(target.rglob("*.py")))
    return out


CORE = files("core")
LOWER = files("core", "store", "render", "service.py", "scanning.py", "config.py")


def test_the_parser_sees_every_form_of_import() -> None:
    """The rules below are only as good as this: check it on the forms that hide imports."""
    where = SRC / "core" / "example.py"
    source = (
        "import os.path\n"
        "from . import models\n"
        "from ..store import sqlite\n"
        "from baton import cli\n"
        "from .. import server\n"
        "def f():\n"
        "    import subprocess\n"
    )
    found = imports(where, source)
    assert {"os.path", "baton.core.models", "baton.store.sqlite", "baton.cli", "baton.server"} <= (
        found
    )
    assert "subprocess" in found
    init = SRC / "core" / "__init__.py"
    assert "baton.core.ids" in imports(init, "from .ids import message_id\n")


def test_there_is_a_core_to_check() -> None:
    names = {p.name for p in CORE}
    assert {"ids.py", "models.py", "chain.py", "validation.py"} <= names


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_imports_only_the_standard_library_and_itself(path: Path) -> None:
    for name in imports(path):
        top = name.split(".")[0]
        if top == "baton":
            assert name == "baton" or name.startswith("baton.core"), f"{path.name} imports {name}"
            continue
        assert top in sys.stdlib_module_names, f"{path.name} imports {name} (not stdlib)"
        assert top not in IO_MODULES, f"{path.name} imports {name} (I/O)"


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_calls_no_io_builtins(path: Path) -> None:
    assert not calls(path) & IO_CALLS, f"{path.name} calls {calls(path) & IO_CALLS}"


@pytest.mark.parametrize("path", LOWER, ids=lambda p: str(p.relative_to(SRC)))
def test_lower_layers_never_import_the_cli_or_the_server(path: Path) -> None:
    for name in imports(path):
        assert not name.startswith(("baton.cli", "baton.server")), f"{path} imports {name}"
        assert name.split(".")[0] not in UI_PACKAGES, f"{path} imports {name}"


def test_store_backends_are_chosen_in_one_place() -> None:
    for path in SRC.rglob("*.py"):
        if path.parent.name == "store":
            continue
        for name in imports(path):
            assert name not in {"baton.store.sqlite", "baton.store.memory"}, (
                f"{path} picks a backend itself; use baton.store.open_store"
            )


def test_the_store_knows_nothing_of_the_service() -> None:
    for path in files("store"):
        for name in imports(path):
            assert not name.startswith(("baton.service", "baton.scanning", "baton.config")), (
                f"{path} imports {name}"
            )
