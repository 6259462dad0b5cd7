"""The S3 blob store against a real SeaweedFS (started once per session by tests/fixtures/services.py):
the blob contract, conditional writes, verified reads, URL forms, and a lost S3 that turns
into a quick Busy and comes back."""

from __future__ import annotations

import hashlib
import http.server
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import obstore
import pytest
from obstore.store import S3Store

from baton.core.errors import Busy, Corrupt, InvalidInput
from baton.store import open_blobs
from baton.store.s3 import S3BlobStore
from tests.fixtures.services import SeaweedFS
from tests.store import test_contract as contract


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def open_s3(url: str) -> S3BlobStore:
    store = open_blobs(url)
    assert isinstance(store, S3BlobStore)
    return store


@pytest.fixture
def blobs(s3_blob_url: str) -> S3BlobStore:
    return open_s3(s3_blob_url)


def raw(seaweedfs: SeaweedFS, blobs: S3BlobStore) -> S3Store:
    """The same bucket and prefix, without baton in between."""
    return S3Store(
        seaweedfs.bucket,
        prefix=blobs.prefix,
        endpoint=seaweedfs.endpoint,
        access_key_id=seaweedfs.access_key,
        secret_access_key=seaweedfs.secret_key,
        region=seaweedfs.region,
        client_options={"allow_http": True},
    )


def key(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256[2:]}"


# the contract every blob store keeps (tests/store/test_contract.py)


@pytest.mark.parametrize(
    "check",
    [
        contract.test_blobs_are_stored_by_their_sha256,
        contract.test_a_blob_must_match_its_id,
        contract.test_an_empty_blob_is_a_blob,
    ],
    ids=lambda check: check.__name__.removeprefix("test_"),
)
def test_the_blob_contract_holds(blobs: S3BlobStore, check: Callable[[Any], None]) -> None:
    check(blobs)


# what S3 adds


def test_the_url_names_bucket_prefix_endpoint_and_region(
    s3_blob_url: str, seaweedfs: SeaweedFS
) -> None:
    blobs = open_s3(s3_blob_url)
    assert blobs.bucket == "baton-test"
    assert blobs.prefix.startswith("t-") and len(blobs.prefix) == 14
    assert blobs.endpoint == seaweedfs.endpoint
    assert blobs.region == "us-east-1"


def test_blobs_are_stored_under_prefix_and_two_hex_folders(
    blobs: S3BlobStore, seaweedfs: SeaweedFS
) -> None:
    data = b"where does it go"
    blobs.put(sha(data), data)
    assert [m["path"] for m in obstore.list(raw(seaweedfs, blobs)).collect()] == [key(sha(data))]
    objects = seaweedfs.client().list_objects_v2(Bucket=seaweedfs.bucket, Prefix=blobs.prefix)
    assert [o["Key"] for o in objects["Contents"]] == [f"{blobs.prefix}/{key(sha(data))}"]


def test_a_put_never_overwrites_and_a_read_is_verified(
    blobs: S3BlobStore, seaweedfs: SeaweedFS
) -> None:
    real = b"the real bytes"
    store = raw(seaweedfs, blobs)
    obstore.put(store, key(sha(real)), b"tampered")
    blobs.put(sha(real), real)  # the key exists: a no-op, not an overwrite
    assert obstore.get(store, key(sha(real))).bytes().to_bytes() == b"tampered"
    with pytest.raises(Corrupt, match=f"blob {sha(real)} is damaged in blob storage"):
        blobs.get(sha(real))


def test_a_mismatching_put_stores_nothing(blobs: S3BlobStore, seaweedfs: SeaweedFS) -> None:
    with pytest.raises(InvalidInput, match=f"blob does not match its id {sha(b'one')}"):
        blobs.put(sha(b"one"), b"two")
    assert obstore.list(raw(seaweedfs, blobs)).collect() == []


def test_list_shows_every_blob_with_its_time_and_nothing_else(
    blobs: S3BlobStore, seaweedfs: SeaweedFS, s3_blob_url: str
) -> None:
    before = time.time()
    payloads = [b"first", b"second", b""]
    for data in payloads:
        blobs.put(sha(data), data)
    after = time.time()
    store = raw(seaweedfs, blobs)
    obstore.put(store, "notes.txt", b"not a blob")
    obstore.put(store, "ab/short", b"not a blob either")
    # A neighbour whose prefix starts with ours is a different folder.
    neighbour = open_s3(s3_blob_url.replace(blobs.prefix, blobs.prefix + "0"))
    neighbour.put(sha(b"next door"), b"next door")
    listed = dict(blobs.list())
    assert sorted(listed) == sorted(sha(data) for data in payloads)
    # S3 keeps whole seconds
    assert all(before - 2 <= when <= after + 2 for when in listed.values()), listed
    assert [s for s, _ in neighbour.list()] == [sha(b"next door")]


def test_delete_is_idempotent(blobs: S3BlobStore) -> None:
    blobs.delete(sha(b"never stored"))
    blobs.put(sha(b"gone soon"), b"gone soon")
    blobs.delete(sha(b"gone soon"))
    blobs.delete(sha(b"gone soon"))
    assert blobs.get(sha(b"gone soon")) is None and list(blobs.list()) == []


@pytest.mark.parametrize("bad", ["", "abc", "A" * 64, "g" * 64, "../" + "a" * 61])
def test_a_bad_blob_id_is_refused(blobs: S3BlobStore, bad: str) -> None:
    for call in (blobs.get, blobs.delete, lambda s: blobs.put(s, b"")):
        with pytest.raises(InvalidInput, match="is not a blob id"):
            call(bad)


# URLs (no server needed)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://", "names no valid bucket"),
        ("s3://ab", "names no valid bucket"),
        ("s3://My_Bucket", "names no valid bucket"),
        ("s3://user@bucket", "names no valid bucket"),
        ("s3://bucket:9000", "names no valid bucket"),
        ("s3://bucket/a//b", "unusable prefix"),
        ("s3://bucket/../up", "unusable prefix"),
        ("s3://bucket/sp ace", "unusable prefix"),
        ("s3://bucket#frag", "has a #fragment"),
        ("s3://bucket?endpoint=ftp://host", "is not http(s)://HOST[:PORT]"),
        ("s3://bucket?endpoint=http://host:1/path", "is not http(s)://HOST[:PORT]"),
        ("s3://bucket?endpoint=host:9000", "is not http(s)://HOST[:PORT]"),
        ("s3://bucket?endpoint=", "gives endpoint twice or empty"),
        ("s3://bucket?endpoint=http://a&endpoint=http://b", "gives endpoint twice or empty"),
        ("s3://bucket?colour=red", "unknown option 'colour'"),
        ("s3://bucket?endpoint", "has a malformed query"),
        ("s3://[bucket", "is not a URL"),
    ],
)
def test_a_bad_url_is_one_line_of_invalid_input(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)) as caught:
        open_blobs(url)
    assert "\n" not in caught.value.message


def test_endpoint_and_region_fall_back_to_the_aws_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_REGION", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    blobs = open_s3("s3://bucket/deep/er")
    assert (blobs.bucket, blobs.prefix, blobs.endpoint, blobs.region) == (
        "bucket",
        "deep/er",
        "http://127.0.0.1:9",
        "eu-west-3",
    )
    url_wins = open_s3("s3://bucket?endpoint=http://s3.local:8333&region=ap-south-1")
    assert (url_wins.prefix, url_wins.endpoint, url_wins.region) == (
        "",
        "http://s3.local:8333",
        "ap-south-1",
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", "s3.local")
    with pytest.raises(InvalidInput, match=r"AWS_ENDPOINT_URL 's3\.local' is not http"):
        open_blobs("s3://bucket")


def test_open_blobs_names_s3_among_its_choices() -> None:
    with pytest.raises(InvalidInput, match=r"s3://BUCKET\[/PREFIX\]\?endpoint=URL"):
        open_blobs("gs://bucket")


# a lost S3


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for a fake S3 (without any, obstore would ask the instance metadata)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")


def assert_busy_soon(call: Callable[[], object], reason: str, within: float = 30.0) -> None:
    start = time.monotonic()
    with pytest.raises(Busy) as caught:
        call()
    took = time.monotonic() - start
    assert took < within, f"{took:.1f}s to give up"
    message = caught.value.message
    assert message.startswith("blob storage is unreachable: ") and message.endswith("; try again")
    assert reason in message and "\n" not in message and len(message) < 200, message


@pytest.mark.slow
def test_a_stopped_s3_is_busy_at_once_and_works_when_it_is_back(
    blobs: S3BlobStore, seaweedfs: SeaweedFS
) -> None:
    kept, later = b"stored before the outage", b"stored after it"
    blobs.put(sha(kept), kept)
    seaweedfs.stop()
    try:
        refused = f"cannot connect to S3 at {seaweedfs.endpoint}"
        assert_busy_soon(lambda: blobs.get(sha(kept)), refused, within=10)
        assert_busy_soon(lambda: blobs.put(sha(later), later), refused, within=10)
        assert_busy_soon(lambda: blobs.delete(sha(kept)), refused, within=10)
        assert_busy_soon(lambda: list(blobs.list()), refused, within=10)
    finally:
        seaweedfs.start()
    assert blobs.get(sha(kept)) == kept  # the same store object: nothing stuck
    blobs.put(sha(later), later)
    assert blobs.get(sha(later)) == later
    assert sorted(s for s, _ in blobs.list()) == sorted([sha(kept), sha(later)])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        yield server.getsockname()[1]


@pytest.mark.slow
@pytest.mark.usefixtures("credentials")
def test_an_s3_that_never_answers_is_busy_within_seconds(silent_port: int) -> None:
    blobs = open_s3(f"s3://bucket?endpoint=http://127.0.0.1:{silent_port}")
    assert_busy_soon(lambda: blobs.get(sha(b"x")), "no answer from S3", within=20)


class Failing(http.server.BaseHTTPRequestHandler):
    def _fail(self) -> None:
        body = b"<Error><Code>InternalError</Code><Message>oops</Message></Error>"
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _fail

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def failing_endpoint() -> Iterator[str]:
    """An S3 that answers 500 to everything."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.usefixtures("credentials")
def test_an_s3_answering_5xx_is_busy(failing_endpoint: str) -> None:
    blobs = open_s3(f"s3://bucket?endpoint={failing_endpoint}")
    reason = f"S3 at {failing_endpoint} answered 500 InternalError"
    assert_busy_soon(lambda: blobs.get(sha(b"x")), reason, within=10)
    assert_busy_soon(lambda: blobs.put(sha(b"x"), b"x"), reason, within=10)


def test_wrong_credentials_and_a_missing_bucket_are_busy_with_a_hint(
    s3_blob_url: str, seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    nowhere = open_s3(seaweedfs.url("t-nowhere").replace(seaweedfs.bucket, "no-such-bucket"))
    assert_busy_soon(lambda: nowhere.get(sha(b"x")), "NoSuchBucket (the bucket does not exist)")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    blobs = open_s3(s3_blob_url)
    assert_busy_soon(lambda: blobs.get(sha(b"x")), "answered 403")


def test_no_credentials_at_all_is_busy_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, failing_endpoint: str
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    # Where obstore then looks for them: here, a server that fails.
    monkeypatch.setenv("AWS_METADATA_ENDPOINT", failing_endpoint)
    blobs = open_s3("s3://bucket?endpoint=http://127.0.0.1:9")
    assert_busy_soon(lambda: blobs.get(sha(b"x")), "no AWS credentials (set AWS_ACCESS_KEY_ID")
