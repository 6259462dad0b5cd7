"""Stores, chosen in one place from a URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from baton.core.errors import InvalidInput
from baton.store.base import BlobStore, Store


def open_store(url: str, synchronous: str = "FULL") -> Store:
    """`sqlite:///path/baton.db` (the default) or `memory://`."""
    parsed = urlparse(url)
    if parsed.scheme == "memory":
        from baton.store.memory import MemoryStore

        return MemoryStore()
    if parsed.scheme == "sqlite":
        from baton.store.sqlite import SQLiteStore

        path = url[len("sqlite://") :]
        return SQLiteStore(":memory:" if path in ("", ":memory:") else Path(path), synchronous)
    raise InvalidInput(f"unknown store URL {url!r}: use sqlite:///PATH or memory://")


def open_blobs(url: str) -> BlobStore:
    """`file:///path/blobs` (the default) or `memory://`."""
    parsed = urlparse(url)
    if parsed.scheme == "memory":
        from baton.store.blobs import MemoryBlobStore

        return MemoryBlobStore()
    if parsed.scheme == "file":
        from baton.store.blobs import LocalBlobStore

        return LocalBlobStore(Path(parsed.path))
    raise InvalidInput(f"unknown blob URL {url!r}: use file:///PATH or memory://")


__all__ = ["BlobStore", "Store", "open_blobs", "open_store"]
