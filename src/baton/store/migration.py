"""What a schema migration is, for every store: a numbered, named step, and the runner of a
script of statements. The steps themselves are per dialect: SQLite's in migrations.py,
PostgreSQL's in pg_migrations.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    apply: Callable[[Any], None]  # given the SQLite connection, or a PostgreSQL cursor


def script(sql: str) -> Callable[[Any], None]:
    """A migration that runs the statements of `sql` (separated by `;` at a line's end)."""

    def run(executor: Any) -> None:
        for statement in sql.split(";\n"):
            if statement.strip():
                executor.execute(statement)

    return run


def git_references(rows: Any) -> list[tuple[str, str]]:
    """(id, sha256) of every blob the git snapshots of `rows` (id, git JSON) name."""
    import orjson

    from baton.store.base import git_blobs

    return [
        (rid, sha) for rid, git in rows if git is not None for sha in git_blobs(orjson.loads(git))
    ]


def fork_point(forked_from: Any) -> str | None:
    """The message a fork was made at, from its `forked_from` JSON (None: an empty fork)."""
    import orjson

    origin = orjson.loads(forked_from)
    point = origin.get("message") if isinstance(origin, dict) else None
    return point if isinstance(point, str) else None
