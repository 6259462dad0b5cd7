"""The app for the server tests: in-process (`live`), on a socket when a test needs one
(`live_server`: a browser), and `baton serve` as a process (`served`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from baton.server import create_app
from tests.fixtures.servers import (
    IN_PROCESS,
    SECRET,
    Live,
    Served,
    ThreadServer,
    in_process,
    make_service,
    person,
    start_serve,
    stop,
)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    """The app in this process, reached through `live.client()`, with alice and bob."""
    service = make_service(tmp_path / "server")
    alice = person(service, "alice", "Alice Example")
    bob = person(service, "bob", "Bob Other")
    app = create_app(service, secret=SECRET, login_rate=1000, share_rate=100_000)
    with in_process(app) as transport:
        service.base_url = IN_PROCESS
        yield Live(IN_PROCESS, service, alice, bob, transport, app)
    service.store.close()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Live]:
    """The same app on 127.0.0.1 and a free port, for what needs a socket."""
    service = make_service(tmp_path / "server")
    alice = person(service, "alice", "Alice Example")
    bob = person(service, "bob", "Bob Other")
    app = create_app(service, secret=SECRET, login_rate=1000, share_rate=100_000)
    with ThreadServer(app) as url:
        service.base_url = url
        yield Live(url, service, alice, bob, app=app)
    service.store.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    running = start_serve(tmp_path / "server-home")
    yield running
    stop(running)
