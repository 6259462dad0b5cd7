"""Servers for the server tests: the app on a real socket in this process (so a test can also
reach the service behind it), and the real `baton serve` command as a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from baton.scanning import SecretScanner
from baton.server import create_app
from baton.service import Service
from baton.store.blobs import LocalBlobStore
from baton.store.sqlite import SQLiteStore

SECRET = "test-secret-" + "x" * 40


class ThreadServer:
    """uvicorn serving an app on 127.0.0.1 and a free port, in a thread."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class Person:
    handle: str
    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Live:
    """A running server, its service, and two accounts with tokens."""

    url: str
    service: Service
    alice: Person
    bob: Person

    def client(self, who: Person | None = None) -> httpx.Client:
        headers = who.headers if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def make_service(folder: Path) -> Service:
    store = SQLiteStore(folder / "baton.db", synchronous="NORMAL")
    return Service(
        store,
        LocalBlobStore(folder / "blobs"),
        scanner=SecretScanner({"MY_SERVICE_TOKEN": "tok-4f9a8b7c6d5e"}),
    )


def person(service: Service, handle: str, name: str) -> Person:
    account = service.accounts.add(handle, name)
    _, token = service.accounts.create_token(account.id, "tests")
    return Person(handle, account.id, token)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    service = make_service(tmp_path / "server")
    alice = person(service, "alice", "Alice Example")
    bob = person(service, "bob", "Bob Other")
    app = create_app(service, secret=SECRET, login_rate=1000, share_rate=100_000)
    with ThreadServer(app) as url:
        service.base_url = url
        yield Live(url, service, alice, bob)
    service.store.close()


@dataclass
class Served:
    """`baton serve` running as a process: its URL, the first-start output, and its home."""

    url: str
    home: Path
    output: str
    token: str
    login_link: str
    process: subprocess.Popen[str]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(home: Path, *extra: str, env: dict[str, str] | None = None) -> Served:
    port = free_port()
    full_env = {**os.environ, "BATON_HOME": str(home), "BATON_USER": "owner", **(env or {})}
    for name in ("BATON_URL", "BATON_SECRET", "BATON_DEBUG"):
        full_env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "baton", "serve", "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
    )
    assert process.stdout is not None
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("baton serve exited: " + "".join(lines))
        lines.append(line)
        if line.startswith("baton serving"):
            break
    output = "".join(lines)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/api/health", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    token = re.search(r"API token:\s+(\S+)", output)
    link = re.search(r"log in to the web pages: (\S+)", output)
    return Served(
        url, home, output, token.group(1) if token else "", link.group(1) if link else "", process
    )


def stop(served: Served) -> None:
    served.process.terminate()
    try:
        served.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    running = start_serve(tmp_path / "server-home")
    yield running
    stop(running)
