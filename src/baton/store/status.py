"""The migration status of a store, for `baton migrate`: the applied and pending migrations,
read without writing anything, and applying the pending ones."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from baton.core.errors import InvalidInput
from baton.store import needs_extra

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class Step:
    number: int
    name: str
    applied_at: str | None = None  # None while pending

    def to_dict(self) -> dict[str, object]:
        return {"number": self.number, "name": self.name, "applied_at": self.applied_at}


def status(url: str) -> list[Step]:
    """Every migration of the store's kind, applied ones with their time. Never writes: a
    missing SQLite file is not created, and no table is made."""
    kind = _kind(url)
    if kind == "sqlite":
        from baton.store import migrations

        known = [(m.number, m.name) for m in migrations.MIGRATIONS]
        path = _sqlite_path(url)
        done: dict[int, str] = {}
        if path.exists():
            lite = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                if lite.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'"
                ).fetchone():
                    done = dict(lite.execute("SELECT number, applied_at FROM migrations"))
            finally:
                lite.close()
        return [Step(n, name, done.get(n)) for n, name in known]
    with needs_extra("postgres", "a postgresql:// store"):
        from baton.store import pg_migrations

    pg_known = [(m.number, m.name) for m in pg_migrations.MIGRATIONS]
    with _pg_connect(url) as pg, pg.cursor() as cur:
        pg_done: dict[int, str] = {}
        if pg_migrations.applied(cur):
            pg_done = dict(cur.execute("SELECT number, applied_at FROM migrations").fetchall())
    return [Step(n, name, pg_done.get(n)) for n, name in pg_known]


def apply(url: str) -> list[Step]:
    """Apply the pending migrations; return those that ran."""
    if _kind(url) == "sqlite":
        from baton.store.sqlite import SQLiteStore

        store = SQLiteStore(_sqlite_path(url), migrate=False)
        try:
            ran = store.apply_migrations()
        finally:
            store.close()
        return [Step(m.number, m.name) for m in ran]
    with needs_extra("postgres", "a postgresql:// store"):
        from baton.store import pg_migrations

    with _pg_connect(url) as conn:
        pg_ran = pg_migrations.migrate(conn)
    return [Step(m.number, m.name) for m in pg_ran]


def _kind(url: str) -> str:
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    raise InvalidInput(f"{url!r} has no migrations: use sqlite:///PATH or postgresql://…")


def _sqlite_path(url: str) -> Path:
    path = url[len("sqlite://") :]
    if path in ("", ":memory:"):
        raise InvalidInput("an in-memory SQLite store has nothing to migrate")
    return Path(path)


def _pg_connect(url: str) -> psycopg.Connection[Any]:
    import psycopg

    from baton.core.errors import Busy

    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        first = (str(exc).strip().splitlines() or ["unreachable"])[0]
        raise Busy(f"cannot reach the database: {first}") from None
