"""Scale-out for real: `baton serve` processes over one PostgreSQL schema and one S3 prefix
(SeaweedFS), driven by concurrent clients over HTTP. No mocks: servers are killed with
SIGKILL, S3 is stopped, PostgreSQL is stopped and started again, and afterwards every
acknowledged message must still be on its chain exactly once, and every chain must verify.

Each client appends one message at a time with `expected_head` = the head it last saw. A 409
names the current head and the client retries there. A connection error or a 503 leaves the
outcome unknown: the client sends the same message (same content, same `created_at`) after
the same head again. Message ids are content-addressed, so that retry is either appended,
or recognised as already stored (200, nothing appended), or, when others appended after it
meanwhile, a 409 after which the client finds its message on the chain."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import psycopg
import pytest

from baton.client import Client
from tests.fixtures.servers import Served, start_serve, stop
from tests.helpers import run_baton, run_json

CREATED_AT = "2025-01-01T00:00:00Z"  # fixed, so a re-sent message has the same id
REQUEST_TIMEOUT = 30.0  # one HTTP request (the database pool waits up to 10 s)
WRITER_DEADLINE = 90.0  # one client's whole run
PG_CLUSTER = ["pg_ctlcluster", "--skip-systemctl-redirect"]

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------------------------------
# servers


class Running:
    """A `baton serve` process whose output is read continuously (a full pipe would block
    the server), kept for the report of a failing test."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.lines: list[str] = [served.output]
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    @property
    def url(self) -> str:
        return self.served.url

    @property
    def process(self) -> subprocess.Popen[str]:
        return self.served.process

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def _drain(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        for line in stream:
            self.lines.append(line)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            stop(self.served)
        self._reader.join(timeout=5)


@dataclass
class Stack:
    """PostgreSQL + S3 settings for `baton` commands, and the servers started over them."""

    tmp: Path
    env: dict[str, str]
    servers: list[Running] = field(default_factory=list)

    def serve(self, *extra: str) -> Running:
        home = self.tmp / f"server-{len(self.servers) + 1}"
        running = Running(start_serve(home, *extra, env=self.env))
        self.servers.append(running)
        assert running.process.poll() is None, running.output
        health = httpx.get(running.url + "/api/health", timeout=5)
        assert health.status_code == 200, running.output
        # The accounts were made up front, so this server printed no first-start token.
        assert running.served.token == "", running.output
        return running

    def add_user(self, handle: str) -> str:
        """An account and its API token, made with the CLI over the same store."""
        data = run_json("users", "add", handle, home=self.tmp / "admin-home", env=self.env)
        assert data["handle"] == handle
        return str(data["token"])

    def close(self) -> None:
        for running in self.servers:
            running.stop()


@pytest.fixture
def stack(tmp_path: Path, postgres_url: str, s3_blob_url: str, seaweedfs: Any) -> Iterator[Stack]:
    env = {
        **seaweedfs.env(),
        "BATON_DATABASE_URL": postgres_url,
        "BATON_BLOB_URL": s3_blob_url,
    }
    made = Stack(tmp_path, env)
    try:
        yield made
    finally:
        made.close()


# ---------------------------------------------------------------------------------------------
# clients


@dataclass(frozen=True)
class Ack:
    """A message the server acknowledged (or recognised as already stored)."""

    session: str
    label: str
    id: str
    parent: str | None  # the expected_head it was sent after
    message: dict[str, Any]
    how: str  # "appended" (201), "stored" (200: already there) or "found" (409, on the chain)


@dataclass
class Log:
    acks: list[Ack] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    conflicts: int = 0
    unknown: list[str] = field(default_factory=list)  # connection errors and 503s
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    halt: threading.Event = field(default_factory=threading.Event)  # a test failed: stop

    def count(self, status: int) -> None:
        with self.lock:
            self.statuses[status] += 1


def message(label: str, size: int = 0) -> dict[str, Any]:
    text = label if size == 0 else label + " " + "y" * size
    return {"role": "user", "parts": [{"type": "text", "text": text}], "created_at": CREATED_AT}


def chain_texts(http: httpx.Client, session_id: str) -> dict[str, str]:
    """The texts of a session's whole chain with their message ids, page by page."""
    texts: dict[str, str] = {}
    params: dict[str, Any] = {"limit": 1000}
    deadline = time.monotonic() + WRITER_DEADLINE
    while True:
        r = http.get(f"/api/sessions/{session_id}/messages", params=params)
        if r.status_code == 503 and time.monotonic() < deadline:  # the database is back soon
            time.sleep(0.1)
            continue
        r.raise_for_status()
        page = r.json()
        texts.update((m["parts"][0].get("text", ""), m["id"]) for m in page["messages"])
        if not page["next_after"]:
            return texts
        params = {"limit": 1000, "after": page["next_after"]}


class Writer(threading.Thread):
    """One client: `count` messages into one session, one append at a time. On a connection
    error it moves to the next server of `urls`."""

    def __init__(
        self, name: str, urls: list[str], token: str, session_id: str, count: int, log: Log
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.urls = urls
        self.token = token
        self.session_id = session_id
        self.count = count
        self.log = log
        self.at = 0  # index into urls
        self.head: str | None = None
        self.labels = [f"{name} #{i}" for i in range(count)]
        self.https = [
            httpx.Client(
                base_url=url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=REQUEST_TIMEOUT,
            )
            for url in urls
        ]

    @property
    def http(self) -> httpx.Client:
        return self.https[self.at]

    def run(self) -> None:
        try:
            deadline = time.monotonic() + WRITER_DEADLINE
            for label in self.labels:
                if not self._send(label, deadline):
                    return
        except Exception as exc:  # reported by the test, never lost in a thread
            self.log.unexpected.append(f"{self.name}: {type(exc).__name__}: {exc}")
        finally:
            for http in self.https:
                http.close()

    def _send(self, label: str, deadline: float) -> bool:
        body = message(label)
        unsure = False  # an earlier attempt of this message may have committed
        path = f"/api/sessions/{self.session_id}/messages"
        while time.monotonic() < deadline and not self.log.halt.is_set():
            sent_after = self.head
            try:
                r = self.http.post(path, json={"expected_head": sent_after, "messages": [body]})
            except httpx.TransportError as exc:
                self.log.unknown.append(
                    f"{self.name} {label}: {type(exc).__name__} on {self.http.base_url}"
                )
                unsure = True
                self.at = (self.at + 1) % len(self.urls)
                time.sleep(0.02)
                continue
            self.log.count(r.status_code)
            if r.status_code in (200, 201):
                data = r.json()
                session = data["session"]
                if r.status_code == 201:
                    [appended] = data["appended"]
                    assert appended["parent"] == sent_after
                    ack = Ack(self.session_id, label, appended["id"], sent_after, body, "appended")
                else:
                    # Already stored after that head: nothing appended, and it is the head.
                    if data["appended"] != [] or not unsure:
                        self.log.unexpected.append(f"{self.name} {label}: 200 {r.text[:300]}")
                        return False
                    ack = Ack(self.session_id, label, session["head"], sent_after, body, "stored")
                self.log.acks.append(ack)
                self.head = session["head"]
                return True
            if r.status_code == 409:
                error = r.json()["error"]
                if error["code"] != "conflict":
                    self.log.unexpected.append(f"{self.name} {label}: 409 {r.text[:300]}")
                    return False
                with self.log.lock:
                    self.log.conflicts += 1
                self.head = error["current_head"]
                found = chain_texts(self.http, self.session_id).get(label) if unsure else None
                if found:  # the lost attempt had committed, and others appended after it
                    self.log.acks.append(Ack(self.session_id, label, found, None, body, "found"))
                    return True
                continue
            if r.status_code == 503 and r.json()["error"]["code"] == "busy":
                self.log.unknown.append(f"{self.name} {label}: 503 {r.json()['error']['message']}")
                unsure = True
                time.sleep(0.1)
                continue
            self.log.unexpected.append(f"{self.name} {label}: {r.status_code} {r.text[:300]}")
            return False
        self.log.unexpected.append(f"{self.name} {label}: gave up after {WRITER_DEADLINE:.0f}s")
        return False


def new_session(url: str, token: str, title: str) -> str:
    r = httpx.post(
        url + "/api/sessions",
        json={"title": title, "platform": "api"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=REQUEST_TIMEOUT,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@contextlib.contextmanager
def writing(writers: list[Writer], log: Log) -> Iterator[None]:
    """The writers run inside the block; if it fails, they stop (not at their deadline)."""
    for w in writers:
        w.start()
    try:
        yield
    finally:
        log.halt.set()
        for w in writers:
            w.join(timeout=REQUEST_TIMEOUT + 5)


def join_writers(writers: list[Writer], log: Log) -> None:
    for w in writers:
        w.join(timeout=WRITER_DEADLINE + REQUEST_TIMEOUT + 10)
        assert not w.is_alive(), f"{w.name} is stuck"
    assert log.unexpected == [], log.unexpected


def http_get(url: str, path: str, token: str) -> httpx.Response:
    return httpx.get(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def check_chains(url: str, token: str, writers: list[Writer], log: Log, others: int = 0) -> None:
    """Every message of every writer is on its session's chain exactly once, in each writer's
    order; every acknowledged id is there; the counts match; every chain verifies. `others`:
    how many more sessions the account has."""
    by_session: dict[str, list[Writer]] = {}
    for w in writers:
        by_session.setdefault(w.session_id, []).append(w)
    client = Client(url, token, timeout=REQUEST_TIMEOUT)
    try:
        for session_id, group in by_session.items():
            session = client.get("", session_id)
            chain = client.messages("", session_id)
            ids = [m.id for m in chain]
            texts = [m.parts[0]["text"] for m in chain]
            wanted = [label for w in group for label in w.labels]
            assert len(chain) == session.message_count == len(wanted), session_id
            assert len(set(ids)) == len(ids), "a message is on the chain twice"
            assert Counter(texts) == Counter(wanted), "a message is lost or duplicated"
            assert chain[-1].id == session.head
            for a, b in itertools.pairwise(chain):
                assert b.parent == a.id
            for w in group:
                positions = [texts.index(label) for label in w.labels]
                assert positions == sorted(positions), f"{w.name}'s messages are out of order"
            acked = [a for a in log.acks if a.session == session_id]
            assert sorted(a.label for a in acked) == sorted(wanted)  # each acknowledged once
            missing = {a.id for a in acked} - set(ids)
            assert not missing, f"acknowledged but not on the chain: {missing}"
            report = client.verify("", session_id)
            assert report.ok, report.problems
            assert report.messages == len(wanted)
        everything = client.verify()
        assert everything.ok, everything.problems
        assert everything.sessions == len(by_session) + others
    finally:
        client.close()


def one_line_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    assert "\n" not in r.text.strip() and "Traceback" not in r.text, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["message"], r.text
    assert "\n" not in error["message"]


# ---------------------------------------------------------------------------------------------
# 1. two servers, one store, many clients


def test_two_servers_many_clients_lose_nothing(stack: Stack) -> None:
    token = stack.add_user("alice")
    a, b = stack.serve(), stack.serve()
    shared = [new_session(a.url, token, "shared one"), new_session(b.url, token, "shared two")]
    log = Log()
    writers = []
    for i in range(8):
        urls = [a.url, b.url] if i % 2 == 0 else [b.url, a.url]
        # six clients on two contended sessions (three each, over both servers), two alone
        session_id = shared[i % 2] if i < 6 else new_session(urls[0], token, f"own {i}")
        writers.append(Writer(f"c{i}", urls, token, session_id, 40, log))
    with writing(writers, log):
        join_writers(writers, log)

    assert log.unknown == [], log.unknown  # no connection error, no 503
    assert set(log.statuses) <= {201, 409}, log.statuses
    assert log.statuses[201] == 8 * 40
    assert log.conflicts == log.statuses[409] > 0  # the contended sessions did contend
    assert all(a.how == "appended" for a in log.acks)
    for server in (a, b):  # both servers see the same sessions
        check_chains(server.url, token, writers, log)
    for server in (a, b):
        assert server.process.poll() is None
        assert "Traceback" not in server.output, server.output


# ---------------------------------------------------------------------------------------------
# 2. one server killed with SIGKILL under load


def test_a_server_killed_under_load_loses_no_acknowledged_message(stack: Stack) -> None:
    token = stack.add_user("alice")
    victim, survivor = stack.serve(), stack.serve()
    shared = [
        new_session(survivor.url, token, "shared one"),
        new_session(survivor.url, token, "shared two"),
    ]
    log = Log()
    writers = []
    for i in range(6):
        urls = [victim.url, survivor.url] if i < 3 else [survivor.url, victim.url]
        session_id = shared[i % 2] if i % 3 != 2 else new_session(survivor.url, token, f"own {i}")
        writers.append(Writer(f"c{i}", urls, token, session_id, 30, log))
    with writing(writers, log):
        wait_for(lambda: len(log.acks) >= 40, 60, "the first acknowledged appends")
        acked_before = len(log.acks)
        victim.kill()
        assert victim.process.returncode == -signal.SIGKILL
        join_writers(writers, log)

    assert acked_before < len(log.acks), "the survivor served nothing after the kill"
    assert set(log.statuses) <= {200, 201, 409}, log.statuses
    assert {a.how for a in log.acks} <= {"appended", "stored", "found"}
    check_chains(survivor.url, token, writers, log)

    # What a client that re-sends after a lost answer sees, deterministically: the same
    # message after the same head is recognised (200, nothing appended, count unchanged)...
    alone = next(w for w in writers if w.session_id not in shared)
    last = next(a for a in reversed(log.acks) if a.session == alone.session_id)
    http = httpx.Client(
        base_url=survivor.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    with http:
        before = http.get(f"/api/sessions/{alone.session_id}").json()
        path = f"/api/sessions/{alone.session_id}/messages"
        again = http.post(path, json={"expected_head": last.parent, "messages": [last.message]})
        assert again.status_code == 200, again.text
        assert again.json()["appended"] == []
        assert again.json()["session"]["head"] == before["head"]
        assert again.json()["session"]["message_count"] == before["message_count"]
        # ...and an older one, which others followed, is a 409 naming the current head.
        first = next(a for a in log.acks if a.session == alone.session_id)
        old = http.post(path, json={"expected_head": first.parent, "messages": [first.message]})
        one_line_error(old, 409, "conflict")
        assert old.json()["error"]["current_head"] == before["head"]
        after = http.get(f"/api/sessions/{alone.session_id}").json()
        assert after["message_count"] == before["message_count"]
        assert after["version"] == before["version"]
    assert "Traceback" not in survivor.output, survivor.output


# ---------------------------------------------------------------------------------------------
# 3. S3 unreachable


def test_unreachable_s3_is_503_and_changes_nothing(stack: Stack, seaweedfs: Any) -> None:
    token = stack.add_user("alice")
    server = stack.serve()
    auth = {"Authorization": f"Bearer {token}"}
    http = httpx.Client(base_url=server.url, headers=auth, timeout=REQUEST_TIMEOUT)
    session_id = new_session(server.url, token, "blobs")
    path = f"/api/sessions/{session_id}/messages"
    # A message with a payload over 64 KiB: stored as a blob in S3.
    stored = http.post(path, json={"messages": [message("first", 100_000)]})
    assert stored.status_code == 201, stored.text
    [part] = stored.json()["appended"][0]["parts"]
    assert part["type"] == "blob_ref"
    stored_sha = part["sha256"]
    before = http.get(f"/api/sessions/{session_id}").json()

    data = os.urandom(70_000)
    sha = hashlib.sha256(data).hexdigest()
    upload = {"content": data, "headers": {"Content-Type": "application/octet-stream"}}
    big = {"expected_head": before["head"], "messages": [message("second", 200_000)]}
    try:
        seaweedfs.stop()
        for name, send in [
            ("blob upload", lambda: http.post(f"/api/blobs/{sha}", **upload)),
            ("append with a blob", lambda: http.post(path, json=big)),
            (
                "blob read",
                lambda: http.get(f"/api/blobs/{stored_sha}", params={"session": session_id}),
            ),
            ("full messages", lambda: http.get(path, params={"full": "true"})),
        ]:
            started = time.monotonic()
            r = send()
            took = time.monotonic() - started
            one_line_error(r, 503, "busy")
            assert took < 20, f"{name} took {took:.1f}s"
            assert "blob storage" in r.json()["error"]["message"], r.text
        # No partial append: the session and its chain are as they were.
        during = http.get(f"/api/sessions/{session_id}").json()
        assert during["head"] == before["head"]
        assert during["message_count"] == before["message_count"] == 1
        assert during["version"] == before["version"]
        assert len(http.get(path).json()["messages"]) == 1
    finally:
        seaweedfs.start()

    again = http.post(f"/api/blobs/{sha}", **upload)
    assert again.status_code == 201, again.text
    appended = http.post(path, json=big)
    assert appended.status_code == 201, appended.text
    assert appended.json()["session"]["message_count"] == 2
    read = http.get(f"/api/blobs/{stored_sha}", params={"session": session_id})
    assert read.status_code == 200 and len(read.content) > 100_000
    full = http.get(path, params={"full": "true"}).json()["messages"]
    assert [len(m["parts"][0]["text"]) for m in full] == [len("first") + 100_001, 200_007]
    report = http.get(f"/api/sessions/{session_id}/verify").json()
    assert report["ok"], report
    http.close()
    assert "Traceback" not in server.output, server.output


# ---------------------------------------------------------------------------------------------
# 4. PostgreSQL restarted under load


def cluster() -> list[str]:
    versions = sorted(os.listdir("/etc/postgresql"))
    assert versions, "no PostgreSQL cluster in /etc/postgresql"
    return [versions[-1], "main"]


def postgres_up() -> bool:
    try:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def pg_ctl(action: str, *flags: str) -> None:
    """Stop or start the PostgreSQL server (other test runs may do the same meanwhile: the
    state asked for is what counts)."""
    done = subprocess.run(
        [*PG_CLUSTER, *cluster(), action, *flags], capture_output=True, text=True, timeout=60
    )
    if action == "start":
        wait_for(postgres_up, 30, "PostgreSQL to start")
    elif postgres_up():
        raise AssertionError(f"pg_ctlcluster {action}: {done.stdout}{done.stderr}")


def timed(name: str, send: Any, server: Running) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    try:
        r = send()
    except httpx.TransportError as exc:
        took = time.monotonic() - started
        raise AssertionError(
            f"{name}: {type(exc).__name__} after {took:.1f}s; server output:\n{server.output}"
        ) from None
    return r, time.monotonic() - started


@pytest.mark.serial  # it stops the machine's PostgreSQL, which every other test uses
def test_postgres_restarted_under_load_is_503_and_then_served_again(stack: Stack) -> None:
    token = stack.add_user("alice")
    server = stack.serve()
    pid = server.process.pid
    shared = new_session(server.url, token, "shared")
    probe = new_session(server.url, token, "probe")
    own = [new_session(server.url, token, f"own {i}") for i in (2, 3)]
    log = Log()
    sessions = [shared, shared, *own]
    writers = [Writer(f"c{i}", [server.url], token, sessions[i], 25, log) for i in range(4)]
    auth = {"Authorization": f"Bearer {token}"}
    http = httpx.Client(base_url=server.url, headers=auth, timeout=REQUEST_TIMEOUT)
    append = {"messages": [message("probe")]}
    outage = {
        "append": lambda: http.post(f"/api/sessions/{probe}/messages", json=append),
        "read": lambda: http.get(f"/api/sessions/{probe}"),
        "list": lambda: http.get("/api/sessions"),
    }
    with http, writing(writers, log):
        try:
            wait_for(lambda: len(log.acks) >= 15, 60, "the first acknowledged appends")
            pg_ctl("stop", "-m", "fast")
            acked_at_stop = len(log.acks)
            # During the outage: a one-line 503 in bounded time, for reads and writes alike;
            # what needs no database still answers.
            with ThreadPoolExecutor(len(outage)) as pool:
                answers = {
                    name: pool.submit(timed, name, send, server) for name, send in outage.items()
                }
                # While they wait for the database, the event loop still answers: before
                # them, and sooner than the pool's wait for a connection (5 s).
                time.sleep(0.5)
                r, took = timed("health", lambda: http.get("/api/health"), server)
                assert r.status_code == 200 and took < 5, f"health took {took:.1f}s"
                assert not any(a.done() for a in answers.values())
            for name, answer in answers.items():
                r, took = answer.result()
                one_line_error(r, 503, "busy")
                assert took < 20, f"{name} took {took:.1f}s"
            assert len(log.acks) == acked_at_stop  # nothing acknowledged without a database
        finally:
            if not postgres_up():
                pg_ctl("start")
        # The same process serves again once the database is back, without a restart.
        deadline = time.monotonic() + 30
        while True:
            r, _ = timed("read after the restart", outage["read"], server)
            if r.status_code == 200:
                break
            one_line_error(r, 503, "busy")
            assert time.monotonic() < deadline, "the server did not recover in 30 s"
            time.sleep(0.1)
        assert server.process.poll() is None and server.process.pid == pid
        assert r.json()["message_count"] == 0  # the probe append during the outage did nothing
        join_writers(writers, log)

    assert set(log.statuses) <= {200, 201, 409, 503}, log.statuses
    assert log.statuses[503] > 0 or log.unknown, "the clients never saw the outage"
    check_chains(server.url, token, writers, log, others=1)
    r = http_get(server.url, "/api/sessions", token)
    assert r.status_code == 200 and len(r.json()["sessions"]) == 4
    assert "Traceback" not in server.output, server.output


# ---------------------------------------------------------------------------------------------
# 5. --workers 2


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def connections(pid: int, port: int) -> int:
    """How many established TCP connections on `port` the process holds."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in (Path("/proc") / str(pid) / "fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                local_port = int(cols[1].rsplit(":", 1)[1], 16)
                if local_port == port and cols[3] == "01" and cols[9] in inodes:
                    count += 1
    return count


def test_workers_two_over_postgres_and_s3(stack: Stack) -> None:
    token = stack.add_user("alice")
    server = stack.serve("--workers", "2")
    assert "2 workers" in server.output
    port = int(server.url.rsplit(":", 1)[1])
    workers = children(server.process.pid)
    assert len(workers) == 2, (workers, server.output)
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(server.url + "/api/health", timeout=5).json() == {"ok": True}
    assert httpx.get(server.url + "/api/me", headers=auth, timeout=5).json()["handle"] == "alice"
    assert httpx.get(server.url + "/api/me", timeout=5).status_code == 401

    # 50 requests over 10 connections of their own, made at once: all succeed, and both
    # worker processes hold some of the connections.
    session_id = new_session(server.url, token, "workers")
    clients = [httpx.Client(base_url=server.url, headers=auth, timeout=30) for _ in range(10)]
    statuses: list[int] = []
    heads: list[str | None] = [None]
    lock = threading.Lock()

    def work(http: httpx.Client, n: int) -> None:
        for i in range(5):
            if i % 2:
                statuses.append(http.get(f"/api/sessions/{session_id}").status_code)
                continue
            with lock:  # one append at a time, so that each goes after the last head
                r = http.post(
                    f"/api/sessions/{session_id}/messages",
                    json={"expected_head": heads[-1], "messages": [message(f"w{n} {i}")]},
                )
                statuses.append(r.status_code)
                if r.status_code == 201:
                    heads.append(r.json()["session"]["head"])

    try:
        threads = [threading.Thread(target=work, args=(c, n)) for n, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert statuses == [s for s in statuses if s in (200, 201)] and len(statuses) == 50
        held = {w: connections(w, port) for w in workers}
        rounds = 0
        while min(held.values()) == 0 and rounds < 10:  # the kernel picked one worker: more
            rounds += 1
            more = [httpx.Client(base_url=server.url, headers=auth, timeout=30) for _ in range(10)]
            clients += more
            for c in more:
                assert c.get("/api/me").status_code == 200
            held = {w: connections(w, port) for w in workers}
        assert all(held.values()), held
    finally:
        for c in clients:
            c.close()
    session = httpx.get(server.url + f"/api/sessions/{session_id}", headers=auth, timeout=5).json()
    assert session["message_count"] == 30 and session["head"] == heads[-1]
    report = httpx.get(server.url + f"/api/sessions/{session_id}/verify", headers=auth, timeout=30)
    assert report.json()["ok"], report.text

    server.stop()
    assert server.process.returncode is not None
    wait_for(lambda: not any(Path(f"/proc/{w}").exists() for w in workers), 15, "workers to exit")
    assert "Traceback" not in server.output, server.output


# ---------------------------------------------------------------------------------------------
# 6. baton migrate


def schema_of(url: str) -> str:
    options = parse_qs(urlsplit(url).query)["options"][0]
    return unquote(options).split("search_path=", 1)[1]


def tables(url: str) -> list[str]:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=5) as c:
        rows = c.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema_of(url),),
        ).fetchall()
    return sorted(r[0] for r in rows)


def test_migrate_lists_then_applies(postgres_url: str, tmp_path: Path) -> None:
    env = {"BATON_DATABASE_URL": postgres_url}
    home = tmp_path / "home"
    names = [
        "m001_initial",
        "m002_search",
        "m003_auth",
        "m004_depth_index",
        "m005_blob_access",
        "m006_logins",
        "m007_inherited",
        "m008_runs",
        "m009_scan_rules",
        "m010_import_later",
    ]
    numbers = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]

    listed = run_baton("migrate", "--list", home=home, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "10 pending" in listed.stdout
    for n, name in zip(numbers, names, strict=True):
        assert f"{n:03d} {name}" in listed.stdout
    assert listed.stdout.count("pending") == 11  # ten steps and the summary
    assert "postgres@127.0.0.1" in listed.stdout
    data = run_json("migrate", "--list", home=home, env=env)
    assert data["pending"] == numbers and data["applied_now"] == []
    assert [m["name"] for m in data["migrations"]] == names
    assert all(m["applied_at"] is None for m in data["migrations"])
    assert tables(postgres_url) == []  # --list wrote nothing, not even the migrations table

    applied = run_json("migrate", home=home, env=env)
    assert applied["pending"] == numbers and applied["applied_now"] == numbers
    assert all(m["applied_at"] for m in applied["migrations"])
    assert "migrations" in tables(postgres_url) and "sessions" in tables(postgres_url)

    after = run_baton("migrate", "--list", home=home, env=env)
    assert after.returncode == 0, after.stderr
    assert "0 pending" in after.stdout and after.stdout.count("applied") == 10
    data = run_json("migrate", "--list", home=home, env=env)
    assert data["pending"] == [] and data["applied_now"] == []
    assert [m["applied_at"] for m in data["migrations"]] == [
        m["applied_at"] for m in applied["migrations"]
    ]
    again = run_baton("migrate", home=home, env=env)
    assert again.returncode == 0 and "up to date" in again.stdout


def test_a_server_on_postgres_with_local_blobs_says_other_machines_will_miss_them(
    postgres_url: str, tmp_path: Path
) -> None:
    served = start_serve(tmp_path / "home", env={"BATON_DATABASE_URL": postgres_url})
    try:
        assert "warning: blobs are kept in" in served.output
        assert "set BATON_BLOB_URL=s3://" in served.output
        assert httpx.get(served.url + "/api/health", timeout=5).status_code == 200
    finally:
        stop(served)
