"""Secrets at rest: what an environment's secrets and a repository's credentials are sealed
with before the store sees them. AES-256-GCM under a key derived from the server secret
(HKDF-SHA256, info "baton environment secrets"); each value is bound to the row it belongs
to (its id is the associated data), so a ciphertext copied to another row does not open.

The server secret is BATON_SECRET, or, on a machine that has none set, the one `baton serve`
makes once in BATON_HOME/server-secret (mode 0600): the CLI in local mode and the server
read the same file, so a run queued by one is opened by the other."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from baton.core.errors import BatonError

SECRET_FILE = "server-secret"
INFO = b"baton environment secrets"
VERSION = b"\x01"  # the first byte of every sealed value: how it was sealed
NONCE_BYTES = 12


class Unsealable(BatonError):
    """A sealed value that the server secret does not open (the secret changed, or the row
    was tampered with)."""

    code = "unsealable"
    status = 500


def local_secret(home: Path) -> str:
    """The server secret of a machine without BATON_SECRET, made once and kept (mode 0600)."""
    path = home / SECRET_FILE
    try:
        value = path.read_text("utf-8").strip()
        if len(value) >= 32:
            return value
    except FileNotFoundError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value


class Sealer:
    """Seals and opens values with the key derived from one server secret."""

    def __init__(self, secret: str | bytes) -> None:
        # imported here: every command loads this module (local_secret), few seal anything
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        raw = secret.encode() if isinstance(secret, str) else secret
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO).derive(raw)
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, bound_to: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return VERSION + nonce + self._aead.encrypt(nonce, plaintext, bound_to.encode())

    def open(self, sealed: bytes, bound_to: str) -> bytes:
        if sealed[:1] != VERSION or len(sealed) < 1 + NONCE_BYTES + 16:
            raise Unsealable(f"the secrets of {bound_to} are not sealed in a form baton reads")
        from cryptography.exceptions import InvalidTag

        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, bound_to.encode())
        except InvalidTag:
            raise Unsealable(
                f"the secrets of {bound_to} do not open with this server's secret (was "
                "BATON_SECRET changed?): set them again"
            ) from None


__all__ = ["SECRET_FILE", "Sealer", "Unsealable", "local_secret"]
