"""What baton imports is what pyproject.toml declares: every library the code imports is a
dependency (not something another dependency happens to bring), and the libraries of the team
backends (PostgreSQL, S3) are extras that a laptop install leaves out and the tests install."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from tests.test_layers import SRC, imports

PYPROJECT = tomllib.loads((SRC.parent.parent / "pyproject.toml").read_text("utf-8"))
EXTRAS = {"postgres": {"psycopg", "psycopg-pool", "procrastinate"}, "s3": {"obstore"}}
# Where the extras' libraries may be imported: modules that open_store/open_blobs and
# store/status.py load inside baton.store.needs_extra, the queue of server runs on PostgreSQL
# (runs/queue.py, inside needs_extra too), and the events bus, which runs.events.open_events
# makes only for a postgresql:// store (opened first, so checked).
EXTRA_MODULES = {
    "runs/events.py",
    "store/sql/postgres.py",
    "store/pg_migrations.py",
    "store/status.py",
    "store/s3.py",
    "runs/queue.py",
}


def name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\[<>=~!; ]", requirement, maxsplit=1)[0]).lower()


def libraries() -> dict[str, set[str]]:
    """The distributions whose modules src/baton imports -> the files importing them."""
    found: dict[str, set[str]] = {}
    dists = packages_distributions()
    for path in SRC.rglob("*.py"):
        for module in imports(path):
            top = module.split(".")[0]
            if not top or top == "baton" or top in sys.stdlib_module_names:
                continue
            assert top in dists, f"{path} imports {module}, which no installed package provides"
            for dist in dists[top]:
                found.setdefault(name(dist), set()).add(str(path.relative_to(SRC)))
    return found


def test_every_library_imported_is_declared() -> None:
    used = libraries()
    assert {"click", "fastapi", "pydantic", "starlette", "psycopg", "obstore"} <= used.keys()
    required = {name(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = {
        extra: {name(r) for r in requirements}
        for extra, requirements in PYPROJECT["project"]["optional-dependencies"].items()
    }
    undeclared = sorted(set(used) - required - set().union(*EXTRAS.values()))
    assert undeclared == []
    for extra, libs in EXTRAS.items():
        assert extras[extra] == libs, extra
        assert not libs & required, f"{libs & required} are required, not the {extra} extra"


def test_the_extras_libraries_are_imported_only_where_the_extras_are_checked() -> None:
    used = libraries()
    for libs in EXTRAS.values():
        for lib in libs:
            assert used.get(lib, set()) <= EXTRA_MODULES, lib


def test_the_test_extra_installs_the_other_extras() -> None:
    """The README's test command installs `.[test]`: the PostgreSQL and S3 tests need both."""
    test = PYPROJECT["project"]["optional-dependencies"]["test"]
    assert "baton[postgres,s3]" in test
    assert set(PYPROJECT["project"]["optional-dependencies"]) == {"postgres", "s3", "test"}
    readme = (SRC.parent.parent / "README.md").read_text("utf-8")
    command = readme.split("<!-- test-command -->", 1)[1].split("```")[1]
    assert re.search(r"pip install -e '\.\[([^\]]*,)?test[],]", command), command
