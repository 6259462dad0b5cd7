"""The embedded SQLite store, under its old name: it lives in store/sql/sqlite.py."""

from baton.store.sql.sqlite import SQLiteStore

__all__ = ["SQLiteStore"]
