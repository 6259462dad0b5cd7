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


# Import cycles. Every module of baton, with the modules of baton each one imports.
MODULES = {module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def baton_imports(path: Path, source: str | None = None) -> dict[str, tuple[int, bool]]:
    """The modules of baton that a file imports: name -> (line, whether inside a function).
    `from a import b` names the module a.b when b is one, else a (a name defined in a)."""
    tree = ast.parse(source if source is not None else path.read_text("utf-8"))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    lazy_lines = {
        node.lineno
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for node in ast.walk(function)
        if isinstance(node, ast.Import | ast.ImportFrom)
    }
    found: dict[str, tuple[int, bool]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(
                    [*package[: len(package) - node.level + 1], *filter(None, [node.module])]
                )
            else:
                base = node.module or ""
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            if name in MODULES and name != module_name(path):
                found.setdefault(name, (node.lineno, node.lineno in lazy_lines))
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of `graph`: its strongly connected components of more than one module
    (Tarjan's algorithm), each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_cycle_finder_finds_cycles() -> None:
    """The rule below is only as good as this: a cycle through three modules, one of two, a
    module that reaches a cycle without being in it; and the imports it sees: a submodule
    named by `from package import module`, a relative one, a name of a package, a lazy one."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f", "a"}, "f": {"e"}}
    assert cycles(graph) == [["a", "b", "c"], ["e", "f"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    where = SRC / "cli" / "example.py"
    found = baton_imports(
        where,
        "from baton.cli import context\n"
        "from baton.cli.output import print_json\n"
        "from . import sessions\n"
        "from baton import __version__\n"
        "def f():\n"
        "    from baton.store.base import Store\n",
    )
    assert found == {
        "baton.cli.context": (1, False),
        "baton.cli.output": (2, False),
        "baton.cli.sessions": (3, False),
        "baton": (4, False),
        "baton.store.base": (6, True),
    }


def test_no_import_cycle_among_the_modules_of_baton() -> None:
    """Arrows only point down, so no module may reach itself through its imports. Every import
    counts, the module-level ones and those inside functions (kept lazy for start-up speed)
    alike: a lazy import hides a cycle from Python at import time, not from the design.
    A package's submodule is not counted as importing its package's `__init__` (Python runs it
    first, but that is how packages work, not a dependency the code chose)."""
    edges = {name: baton_imports(path) for name, path in MODULES.items()}
    found = cycles({name: set(targets) for name, targets in edges.items()})
    described = [
        "; ".join(
            f"{module} imports {target} (line {line}{', in a function' if lazy else ''})"
            for module in cycle
            for target, (line, lazy) in sorted(edges[module].items())
            if target in cycle
        )
        for cycle in found
    ]
    assert described == []


def command_modules() -> set[str]:
    """The modules of the CLI that define click commands or groups."""
    found = set()
    for path in files("cli"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Call) and ast.unparse(d.func).endswith((".command", ".group"))
                for d in node.decorator_list
            ):
                found.add(module_name(path))
    return found


def test_cli_commands_share_helpers_through_modules_of_their_own() -> None:
    """A command module never imports another one (only main.py, which registers them all):
    what several commands share (the context, options, output, snapshots, forks) lives in a
    module without commands."""
    commands = command_modules()
    assert {"baton.cli.main", "baton.cli.sessions", "baton.cli.chat", "baton.cli.git"} <= commands
    assert not {"baton.cli.context", "baton.cli.options", "baton.cli.output"} & commands
    for path in files("cli"):
        if path.name == "main.py":
            continue
        for name, (line, _) in baton_imports(path).items():
            assert name not in commands, f"{path.name}:{line} imports the commands of {name}"


def test_no_module_imports_another_modules_private_names() -> None:
    """A name that starts with `_` is its module's own; what two modules share is public."""
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or "baton" in (node.module or "")):
                private = [
                    a.name
                    for a in node.names
                    if a.name.startswith("_") and not a.name.endswith("__")
                ]
                assert not private, (
                    f"{path.relative_to(SRC)}:{node.lineno} imports {private} of {node.module}"
                )
