"""Secrets out of everything a run records: each value of an environment's secrets becomes
`[SECRET:NAME]` in setup output, tool calls and results, the assistant's text and the run's
error, before any of it is appended (or published to watchers).

A value shorter than MIN_LENGTH is not masked (it would turn every occurrence of a common
word into a mask); the service keeps secrets at least that long. The same way, the server's
own folders (the run's workspace, BATON_HOME) become what the run's commands see instead
(/home/user/<repo>, `[BATON_HOME]`), for what the worker itself words (its errors, a file
tool's message)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MIN_LENGTH = 4


class Mask:
    def __init__(self, secrets: Mapping[str, str], paths: Mapping[str, str] | None = None) -> None:
        pairs = [(str(v), f"[SECRET:{k}]") for k, v in secrets.items() if len(str(v)) >= MIN_LENGTH]
        pairs += [(str(k), str(v)) for k, v in (paths or {}).items() if len(str(k)) >= MIN_LENGTH]
        pairs.sort(key=lambda pair: -len(pair[0]))  # a value inside another: the longer first
        self.pairs = pairs

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def text(self, text: str) -> str:
        for value, instead in self.pairs:
            if value in text:
                text = text.replace(value, instead)
        return text

    def value(self, value: Any) -> Any:
        """`value` (JSON: a message, metadata) with every string masked."""
        if not self.pairs:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def holdback(self, text: str) -> int:
        """How many characters at the end of `text` could begin a secret that the text to
        come completes (so they are kept back until it comes)."""
        longest = 0
        for value, _ in self.pairs:
            for size in range(min(len(value) - 1, len(text)), longest, -1):
                if text.endswith(value[:size]):
                    longest = size
                    break
        return longest


class MaskedStream:
    """Masks text that arrives in pieces (streamed deltas): what may begin a secret waits
    for the next piece."""

    def __init__(self, mask: Mask) -> None:
        self.mask = mask
        self.pending = ""

    def feed(self, delta: str) -> str:
        text = self.mask.text(self.pending + delta)
        held = self.mask.holdback(text)
        self.pending = text[len(text) - held :] if held else ""
        return text[: len(text) - held]

    def end(self) -> str:
        rest, self.pending = self.mask.text(self.pending), ""
        return rest
