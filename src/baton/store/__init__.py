"""Stores, chosen in one place from a URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from baton.core.errors import InvalidInput
from baton.store.base import BlobStore, Store

# The optional dependencies (pyproject's extras) of the team backends, by extra.
EXTRAS = {"postgres": ("psycopg", "psycopg_pool", "procrastinate"), "s3": ("obstore",)}


@contextmanager
def needs_extra(extra: str, what: str) -> Iterator[None]:
    """Imports of a backend's libraries, where a missing one is a one-line error that says
    which extra to install (a laptop install leaves them out)."""
    try:
        yield
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in EXTRAS[extra]:
            raise
        raise InvalidInput(
            f"{what} needs {exc.name}, which is not installed: pip install 'baton[{extra}]'"
        ) from None


def open_store(url: str, synchronous: str = "FULL", migrate: bool = True) -> Store:
    """`sqlite:///path/baton.db` (the default), `postgresql://…` or `memory://`. With
    `migrate`, pending schema migrations are applied on opening."""
    parsed = urlparse(url)
    if parsed.scheme in ("postgresql", "postgres"):
        with needs_extra("postgres", "a postgresql:// store"):
            from baton.store.sql.postgres import PostgresStore

        return PostgresStore(url, migrate=migrate)
    if parsed.scheme == "memory":
        from baton.store.memory import MemoryStore

        return MemoryStore()
    if parsed.scheme == "sqlite":
        from baton.store.sql.sqlite import SQLiteStore

        path = url[len("sqlite://") :]
        return SQLiteStore(
            ":memory:" if path in ("", ":memory:") else Path(path), synchronous, migrate=migrate
        )
    raise InvalidInput(
        f"unknown store URL {url!r}: use sqlite:///PATH, postgresql://HOST/DATABASE or memory://"
    )


def open_blobs(url: str) -> BlobStore:
    """`file:///path/blobs` (the default), `s3://bucket/prefix?endpoint=http://host:port`
    (credentials from the AWS_* variables) or `memory://`."""
    choices = "use file:///PATH, s3://BUCKET[/PREFIX]?endpoint=URL or memory://"
    try:
        parsed = urlparse(url)
    except ValueError:
        raise InvalidInput(f"blob URL {url!r} is not a URL: {choices}") from None
    if parsed.scheme == "memory":
        from baton.store.blobs import MemoryBlobStore

        return MemoryBlobStore()
    if parsed.scheme == "file":
        if parsed.netloc:
            raise InvalidInput(
                f"blob URL {url!r} names a host ({parsed.netloc}): use file:///ABSOLUTE/PATH"
            )
        from baton.store.blobs import LocalBlobStore

        return LocalBlobStore(Path(parsed.path))
    if parsed.scheme == "s3":
        with needs_extra("s3", "an s3:// blob store"):
            from baton.store.s3 import S3BlobStore

        return S3BlobStore(url)
    raise InvalidInput(f"unknown blob URL {url!r}: {choices}")


__all__ = ["BlobStore", "Store", "needs_extra", "open_blobs", "open_store"]
