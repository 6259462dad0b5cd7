"""Redaction rules: masking secrets for display and replacing them in published copies."""

from __future__ import annotations

from typing import Any

from baton.core.attachments import decode, redact_encoded
from baton.core.models import JSON


def mask(value: str) -> str:
    """Enough of a secret to recognise it, never enough to use it."""
    if len(value) < 12:
        return "*" * len(value)
    return f"{value[:4]}…{value[-2:]} ({len(value)} chars)"


def redact_value(value: Any, secrets: dict[str, str]) -> Any:
    """Replace every secret (value -> kind) in every string inside `value`, object keys
    included (the scan reads keys too, so a secret used as a key is one), and in what every
    encoded attachment says (re-encoded, or withheld: core.attachments)."""
    if not secrets:
        return value
    ordered = sorted(secrets.items(), key=lambda kv: -len(kv[0]))
    value = redact_encoded(value, secrets, lambda text: _redact(text, ordered))
    return _redact(value, ordered)


def _redact(value: Any, secrets: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        for secret, kind in secrets:  # longest first: a secret inside a longer one goes with it
            if secret in value:
                value = value.replace(secret, f"[REDACTED:{kind}]")
        return value
    if isinstance(value, list):
        return [_redact(v, secrets) for v in value]
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            key = _redact(k, secrets)
            # two secrets as keys of one object must not become one key
            n = 1
            while key in out:
                n += 1
                key = f"{_redact(k, secrets)} ({n})"
            out[key] = _redact(v, secrets)
        return out
    return value


def redact_parts(parts: list[JSON], secrets: dict[str, str]) -> list[JSON]:
    out: list[JSON] = redact_value(parts, secrets)
    return out


def strings_in(value: Any) -> list[str]:
    """Every string inside a JSON value (keys included), and the text of every encoded
    attachment in it (a base64 file part that holds text), for scanning."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            found.extend(k for k in item if isinstance(k, str))
            stack.extend(item.values())
            if "data" in item:
                decoded = decode(item)
                if decoded is not None:
                    found.append(decoded.text)
    return found
