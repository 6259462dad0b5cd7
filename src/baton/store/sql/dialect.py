"""What differs between SQLite's SQL and PostgreSQL's, for the statements the two stores share:
placeholders, skipping rows already there, null-safe equality, insertion order, how a list of
values is matched, and the values each database holds. The shared statements are written
once with `?` placeholders (common.py) and the dialect turns them into its own."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dialect:
    mark: str  # the driver's placeholder
    insert_new: str  # an INSERT that skips a row whose key is there already: its start…
    on_conflict: str  # …and its end
    same: str  # null-safe equality of two values
    order: str  # the column that keeps the order rows were inserted in
    batch: int | None  # how many values an IN list holds; None: one array parameter
    text_nul: bool  # text columns hold no NUL character: it becomes U+FFFD
    flags_are_ints: bool  # booleans are stored as 0 and 1

    def sql(self, query: str) -> str:
        """`query`, written with `?` placeholders, in this dialect (so a shared statement
        holds no other `?`, and no `%` but a placeholder of the backend's own)."""
        return query if self.mark == "?" else _percent(query)

    def insert(self, table: str, columns: str, skip: bool = False) -> str:
        """An INSERT of one row of `columns`; with `skip`, a row whose key exists is left."""
        marks = ",".join([self.mark] * len(columns.split(",")))
        if not skip:
            return f"INSERT INTO {table}({columns}) VALUES ({marks})"
        return f"{self.insert_new} {table}({columns}) VALUES ({marks}){self.on_conflict}"

    def any_of(self, column: str, values: Sequence[Any]) -> Iterator[tuple[str, list[Any]]]:
        """Terms that match `column` against `values`, each with its arguments: one term
        with an array, or (where a statement takes a bounded number of arguments) batches."""
        if not values:
            return
        if self.batch is None:
            yield f"{column} = ANY({self.mark})", [list(values)]
            return
        for start in range(0, len(values), self.batch):
            part = list(values[start : start + self.batch])
            yield f"{column} IN ({','.join([self.mark] * len(part))})", part

    def text(self, value: str | None) -> str | None:
        if value is None or not self.text_nul:
            return value
        return value.replace("\x00", "\ufffd")

    def flag(self, value: bool) -> int | bool:
        return int(value) if self.flags_are_ints else bool(value)


@functools.lru_cache(maxsize=1024)
def _percent(query: str) -> str:
    return query.replace("?", "%s")


SQLITE = Dialect(
    mark="?",
    insert_new="INSERT OR IGNORE INTO",
    on_conflict="",
    same="IS",
    order="rowid",
    batch=500,
    text_nul=False,
    flags_are_ints=True,
)
POSTGRES = Dialect(
    mark="%s",
    insert_new="INSERT INTO",
    on_conflict=" ON CONFLICT DO NOTHING",
    same="IS NOT DISTINCT FROM",
    order="seq",
    batch=None,
    text_nul=True,
    flags_are_ints=False,
)
