"""Blob stores: bytes by SHA-256, written atomically, verified on read."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from baton.core.errors import Corrupt, InvalidInput
from baton.core.ids import sha256_hex
from baton.store.base import BlobStore


def _check(sha256: str, data: bytes) -> None:
    if sha256_hex(data) != sha256:
        raise InvalidInput(f"blob does not match its id {sha256}")


class MemoryBlobStore(BlobStore):
    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._times: dict[str, float] = {}

    def put(self, sha256: str, data: bytes) -> None:
        _check(sha256, data)
        if sha256 not in self._blobs:
            self._blobs[sha256] = data
            self._times[sha256] = time.time()

    def get(self, sha256: str) -> bytes | None:
        return self._blobs.get(sha256)

    def delete(self, sha256: str) -> None:
        self._blobs.pop(sha256, None)
        self._times.pop(sha256, None)

    def list(self) -> Iterator[tuple[str, float]]:
        yield from list(self._times.items())


class LocalBlobStore(BlobStore):
    """`root/ab/cdef…`: a temp file in the same folder, fsync, rename, fsync the folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise InvalidInput(f"{sha256!r} is not a blob id")
        return self.root / sha256[:2] / sha256[2:]

    def put(self, sha256: str, data: bytes) -> None:
        _check(sha256, data)
        path = self._path(sha256)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def get(self, sha256: str) -> bytes | None:
        try:
            data = self._path(sha256).read_bytes()
        except FileNotFoundError:
            return None
        if sha256_hex(data) != sha256:
            raise Corrupt(f"blob {sha256} is damaged on disk ({self._path(sha256)})")
        return data

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)

    def list(self) -> Iterator[tuple[str, float]]:
        if not self.root.exists():
            return
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or len(folder.name) != 2:
                continue
            for item in folder.iterdir():
                if not item.name.startswith(".tmp-"):
                    yield folder.name + item.name, item.stat().st_mtime
