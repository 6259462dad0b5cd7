"""Stored text made safe to print on a terminal.

Sessions hold what agents, tools and other people wrote; printed raw, an escape sequence in
it could retitle the window (OSC 0), clear the screen (CSI 2J), hide a link (OSC 8) or reorder
what is shown (bidi overrides). `printable` shows every such character visibly instead: C0
controls but newline and tab, DEL, C1 controls, and the bidi embedding, override and isolate
marks become `\\x1b`-style escapes (`\\u202e` above U+00FF). `has_controls` says whether a
one-line name (a display name) holds any control or bidi mark, for refusing it on input.
"""

from __future__ import annotations

import re

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
_ANY_CONTROL = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character but newline and tab, and every bidi control,
    written as a visible escape (ESC -> `\\x1b`, U+202E -> `\\u202e`). A CR before a newline
    is dropped (Windows line ends are layout, not an attack)."""
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(_visible, text.replace("\r\n", "\n"))


_JSON_RAW = re.compile(f"[\x7f-\x9f{_BIDI}]")


def json_printable(document: str) -> str:
    """JSON text with the controls JSON leaves raw (DEL, C1, bidi marks) written as `\\uXXXX`
    escapes: the same value, and nothing a terminal acts on. (JSON escapes C0 itself.)"""
    if not _JSON_RAW.search(document):
        return document
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", document)


def has_controls(text: str) -> bool:
    """Does `text` hold a control character (newline and tab included) or a bidi control?"""
    return _ANY_CONTROL.search(text) is not None
