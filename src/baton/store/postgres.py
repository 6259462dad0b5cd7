"""The PostgreSQL store, under its old name: it lives in store/sql/postgres.py."""

from baton.store.sql.postgres import PostgresStore

__all__ = ["PostgresStore"]
