from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.scanning import SecretScanner
from baton.service import Service
from baton.store.base import BlobStore, Store
from baton.store.blobs import LocalBlobStore, MemoryBlobStore
from baton.store.memory import MemoryStore
from baton.store.sqlite import SQLiteStore

# Fixtures for every test: PostgreSQL and SeaweedFS, git without the machine's config (autouse),
# the fake model.
pytest_plugins = ["tests.fixtures.services", "tests.fixtures.git", "tests.fixtures.model"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files holding a `slow` test run first (in their own order, so module fixtures are made
    once): under xdist they start early instead of ending the run alone."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A `serial` test stops a service the other tests use (the machine's PostgreSQL): beside
    other xdist workers it would break their tests, so it runs only in a run of its own."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    if item.get_closest_marker("serial") and workers > 1:
        from tests.fixtures.services import unavailable

        unavailable(
            "this test stops PostgreSQL, which the other workers use: run it alone "
            "(python -m pytest -m serial)"
        )


@pytest.fixture(autouse=True)
def baton_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data folder: no test touches a real home."""
    home = tmp_path / "baton-home"
    monkeypatch.setenv("BATON_HOME", str(home))
    # Commands run where a user would: not inside this project's own git repository.
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    for name in ("BATON_DATABASE_URL", "BATON_BLOB_URL", "BATON_URL", "BATON_USER"):
        monkeypatch.delenv(name, raising=False)
    # Output is as wide as when piped, whatever runs the tests (xdist workers get COLUMNS=80).
    for name in ("COLUMNS", "LINES"):
        monkeypatch.delenv(name, raising=False)
    return home


STORE_KINDS = ["memory", "sqlite", "postgres"]


def make_store(kind: str, tmp_path: Path) -> tuple[Store, BlobStore]:
    if kind == "memory":
        return MemoryStore(), MemoryBlobStore()
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "store" / "baton.db"), LocalBlobStore(
            tmp_path / "store" / "blobs"
        )
    raise ValueError(kind)


@pytest.fixture(params=STORE_KINDS)
def store_pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, BlobStore]]:
    if request.param == "postgres":
        # PostgreSQL (a schema of its own per test) with blobs on a real S3 server.
        from baton.store import open_blobs, open_store

        store = open_store(request.getfixturevalue("postgres_url"))
        blobs = open_blobs(request.getfixturevalue("s3_blob_url"))
        yield store, blobs
        store.close()
        return
    store, blobs = make_store(request.param, tmp_path)
    yield store, blobs
    store.close()


@pytest.fixture
def store(store_pair: tuple[Store, BlobStore]) -> Store:
    return store_pair[0]


@pytest.fixture
def service(store_pair: tuple[Store, BlobStore]) -> Service:
    store, blobs = store_pair
    return Service(store, blobs, scanner=SecretScanner({"MY_SERVICE_TOKEN": "tok-4f9a8b7c6d5e"}))


@pytest.fixture
def owner(service: Service) -> str:
    return service.account("alice", "Alice Example").id


@pytest.fixture
def other(service: Service) -> str:
    return service.account("bob", "Bob Example").id
