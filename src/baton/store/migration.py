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
