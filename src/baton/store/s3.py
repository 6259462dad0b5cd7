"""Blobs in an S3 bucket (SeaweedFS, MinIO, AWS…): `s3://BUCKET[/PREFIX]?endpoint=URL`.

Keys are `PREFIX/ab/cdef…`, as on disk. A write is conditional (If-None-Match), so a blob is
never overwritten, and a read is checked against its id. Credentials come from the usual
AWS_* variables. A lost or failing S3 surfaces quickly as Busy (503): short timeouts and few
retries instead of obstore's three minutes. Nothing is cached between calls but the HTTP
client, which reconnects, so the store works again as soon as S3 is back."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import obstore
from obstore.exceptions import AlreadyExistsError, BaseError
from obstore.store import S3Store

from baton.core.errors import Busy, Corrupt, InvalidInput
from baton.core.ids import sha256_hex
from baton.store.base import BlobStore

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config

USAGE = "use s3://BUCKET[/PREFIX]?endpoint=http://HOST:PORT[&region=REGION]"
DEFAULT_REGION = "us-east-1"
# An unreachable S3 fails a request in seconds (a refused connection at once, a stalled one
# after READ_TIMEOUT), not after obstore's default three minutes.
CONNECT_TIMEOUT = timedelta(seconds=2)
READ_TIMEOUT = timedelta(seconds=5)  # a stalled answer
REQUEST_TIMEOUT = timedelta(seconds=60)  # one whole request, a large blob included
RETRIES = 2
RETRY_WINDOW = timedelta(seconds=4)

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_HEX = frozenset("0123456789abcdef")
_KEY = re.compile(r"([0-9a-f]{2})/([0-9a-f]{62})")
# S3's own error codes worth a hint (the rest are named as they come).
_HINTS = {
    "NoSuchBucket": "the bucket does not exist",
    "AccessDenied": "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    "InvalidAccessKeyId": "check AWS_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "check AWS_SECRET_ACCESS_KEY",
}


class S3BlobStore(BlobStore):
    """Blobs at `PREFIX/ab/cdef…` in one bucket; opening one does no I/O."""

    def __init__(self, url: str, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.bucket, self.prefix, self.endpoint, self.region = _parse(url, env)
        config: S3Config = {"region": self.region}
        if self.endpoint:
            config["endpoint"] = self.endpoint
        if env.get("AWS_ACCESS_KEY_ID"):
            config["access_key_id"] = env["AWS_ACCESS_KEY_ID"]
        if env.get("AWS_SECRET_ACCESS_KEY"):
            config["secret_access_key"] = env["AWS_SECRET_ACCESS_KEY"]
        if env.get("AWS_SESSION_TOKEN"):
            config["session_token"] = env["AWS_SESSION_TOKEN"]
        client: ClientConfig = {
            "allow_http": self.endpoint.startswith("http://"),
            "connect_timeout": CONNECT_TIMEOUT,
            "read_timeout": READ_TIMEOUT,
            "timeout": REQUEST_TIMEOUT,
        }
        retry: RetryConfig = {
            "max_retries": RETRIES,
            "retry_timeout": RETRY_WINDOW,
            "backoff": {
                "init_backoff": timedelta(milliseconds=100),
                "max_backoff": timedelta(seconds=1),
                "base": 2,
            },
        }
        try:
            self._store = S3Store(
                self.bucket,
                prefix=self.prefix or None,
                config=config,
                client_options=client,
                retry_config=retry,
            )
        except (BaseError, ValueError) as exc:
            raise InvalidInput(f"blob URL {url!r} cannot be used: {_first_line(exc)}") from None

    def __repr__(self) -> str:
        where = f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket
        return f"S3BlobStore(s3://{where} at {self.endpoint or 'AWS'})"

    def put(self, sha256: str, data: bytes) -> None:
        key = _key(sha256)
        if sha256_hex(data) != sha256:
            raise InvalidInput(f"blob does not match its id {sha256}")
        try:
            obstore.put(self._store, key, data, mode="create")
        except AlreadyExistsError:
            return  # the same bytes are there already: a blob is never overwritten
        except (BaseError, OSError) as exc:
            raise _unreachable(exc) from None

    def get(self, sha256: str) -> bytes | None:
        key = _key(sha256)
        try:
            data = obstore.get(self._store, key).bytes().to_bytes()
        except FileNotFoundError as exc:
            if "NoSuchBucket" in str(exc):
                raise _unreachable(exc) from None
            return None
        except (BaseError, OSError) as exc:
            raise _unreachable(exc) from None
        if sha256_hex(data) != sha256:
            raise Corrupt(f"blob {sha256} is damaged in blob storage ({self._where(key)})")
        return data

    def delete(self, sha256: str) -> None:
        key = _key(sha256)
        try:
            obstore.delete(self._store, key)
        except FileNotFoundError as exc:
            if "NoSuchBucket" in str(exc):
                raise _unreachable(exc) from None
        except (BaseError, OSError) as exc:
            raise _unreachable(exc) from None

    def list(self) -> Iterator[tuple[str, float]]:
        pages = obstore.list(self._store, chunk_size=1000)
        while True:
            try:
                page = next(pages, None)
            except (BaseError, OSError) as exc:
                raise _unreachable(exc) from None
            if page is None:
                return
            for meta in page:
                found = _KEY.fullmatch(meta["path"])
                if found:  # anything else under the prefix is not a blob
                    yield found[1] + found[2], meta["last_modified"].timestamp()

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}{key}"


def _key(sha256: str) -> str:
    if len(sha256) != 64 or not set(sha256) <= _HEX:
        raise InvalidInput(f"{sha256!r} is not a blob id")
    return f"{sha256[:2]}/{sha256[2:]}"


def _parse(url: str, env: Mapping[str, str]) -> tuple[str, str, str, str]:
    """Bucket, prefix, endpoint ('' for AWS itself) and region of an s3:// URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidInput(f"blob URL {url!r} is not a URL: {USAGE}") from None
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise InvalidInput(f"blob URL {url!r} has a malformed query: {USAGE}") from None
    if parts.scheme != "s3":
        raise InvalidInput(f"blob URL {url!r} is not an s3:// URL: {USAGE}")
    if not _BUCKET.fullmatch(parts.netloc):
        raise InvalidInput(
            f"blob URL {url!r} names no valid bucket (3 to 63 lowercase letters, digits, "
            f"dots and dashes): {USAGE}"
        )
    if parts.fragment:
        raise InvalidInput(f"blob URL {url!r} has a #fragment: {USAGE}")
    prefix = parts.path.strip("/")
    segments = prefix.split("/") if prefix else []
    if any(not _SEGMENT.fullmatch(s) or s in (".", "..") for s in segments):
        raise InvalidInput(
            f"blob URL {url!r} has an unusable prefix {parts.path!r} (letters, digits, "
            f"'.', '_' and '-' between single slashes): {USAGE}"
        )
    options: dict[str, str] = {}
    for name, value in query:
        if name not in ("endpoint", "region"):
            raise InvalidInput(f"blob URL {url!r} has an unknown option {name!r}: {USAGE}")
        if name in options or not value:
            raise InvalidInput(f"blob URL {url!r} gives {name} twice or empty: {USAGE}")
        options[name] = value
    endpoint, source = options.get("endpoint", ""), "its endpoint"
    for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if not endpoint and env.get(var):
            endpoint, source = env[var], var
    if endpoint:
        where = urlsplit(endpoint)
        if (
            where.scheme not in ("http", "https")
            or not where.hostname
            or where.path not in ("", "/")
            or where.query
            or where.username
        ):
            raise InvalidInput(
                f"blob URL {url!r}: {source} {endpoint!r} is not http(s)://HOST[:PORT]"
            )
        endpoint = endpoint.rstrip("/")
    region = (
        options.get("region") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    ) or DEFAULT_REGION
    return parts.netloc, prefix, endpoint, region


def _unreachable(exc: BaseException) -> Busy:
    return Busy(f"blob storage is unreachable: {_reason(exc)}; try again")


def _reason(exc: BaseException) -> str:
    """A few words for what went wrong, out of obstore's many-line report."""
    text = str(exc)
    status = re.search(r"status code: (\d{3})", text)
    code = re.search(r"<Code>(\w{1,64})</Code>", text)
    url = re.search(r"Error performing \w+ (https?://[^/\s]+)", text)
    at = f" at {url[1]}" if url else ""
    if "/latest/api/token" in text or "/latest/meta-data/" in text:
        # With no credentials set, obstore asks the instance metadata service for some.
        return "no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    if status:
        reason = f"S3{at} answered {status[1]}" + (f" {code[1]}" if code else "")
        hint = _HINTS.get(code[1]) if code else None
        return f"{reason} ({hint})" if hint else reason
    if "kind: Timeout" in text or "timed out" in text:
        return f"no answer from S3{at} in time"
    if "error sending request" in text or "kind: Connect" in text:
        return f"cannot connect to S3{at}"
    return _first_line(exc)[:200]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
