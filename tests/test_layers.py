"""The layer rule of DESIGN §2, checked on the source: arrows only point down."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "baton"
IO_MODULES = {
    "sqlite3",
    "os",
    "subprocess",
    "socket",
    "httpx",
    "click",
    "shutil",
    "tempfile",
    "io",
    "pathlib",
    "urllib",
    "http",
    "asyncio",
    "threading",
}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules_under(folder: str) -> list[Path]:
    return sorted((SRC / folder).rglob("*.py")) if folder else [SRC / "service.py"]


def test_core_imports_only_the_standard_library_and_itself() -> None:
    for path in modules_under("core"):
        for name in imports(path):
            top = name.split(".")[0]
            if name.startswith("baton."):
                assert name.startswith("baton.core"), f"{path.name} imports {name}"
                continue
            assert top in sys.stdlib_module_names, f"{path.name} imports {name}"
            assert top not in IO_MODULES, f"{path.name} imports {name} (I/O)"


def test_lower_layers_never_import_the_cli() -> None:
    lower = [
        *modules_under("core"),
        *modules_under("store"),
        SRC / "service.py",
        SRC / "scanning.py",
    ]
    for path in lower:
        for name in imports(path):
            assert not name.startswith(("baton.cli", "baton.server")), f"{path} imports {name}"
            assert name.split(".")[0] not in {"click", "rich"}, f"{path} imports {name}"


def test_store_backends_are_chosen_in_one_place() -> None:
    for path in SRC.rglob("*.py"):
        if path.parent.name == "store" or path.name == "conftest.py":
            continue
        for name in imports(path):
            assert name not in {"baton.store.sqlite", "baton.store.memory"}, (
                f"{path} picks a backend itself; use baton.store.open_store"
            )
