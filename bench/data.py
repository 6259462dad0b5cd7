"""Realistic synthetic sessions: ~200 B prompts, 2-8 KB replies, tool calls, outputs to 60 KB."""

from __future__ import annotations

import random
from typing import Any

_WORDS = [
    "the",
    "session",
    "file",
    "value",
    "return",
    "import",
    "class",
    "self",
    "def",
    "result",
    "error",
    "test",
    "build",
    "path",
    "config",
    "server",
    "client",
    "message",
    "token",
    "commit",
    "branch",
    "status",
    "update",
    "print",
    "open",
    "read",
    "write",
    "list",
    "dict",
    "int",
    "str",
    "none",
    "true",
    "false",
    "for",
    "while",
    "if",
    "else",
    "try",
    "except",
    "raise",
    "with",
    "as",
    "from",
]


class Corpus:
    """Random text cut from one long pre-generated string, so making 75 MB is quick."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        words = [self.rnd.choice(_WORDS) for _ in range(200_000)]
        lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
        self.text = "\n".join(lines)

    def take(self, size: int) -> str:
        start = self.rnd.randrange(0, len(self.text) - size - 1)
        return self.text[start : start + size]


def messages(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """A coding conversation: user prompt, assistant reply with a tool call, the tool's output,
    an assistant summary; repeated."""
    corpus = Corpus(seed)
    rnd = corpus.rnd
    out: list[dict[str, Any]] = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            out.append({"role": "user", "parts": [{"type": "text", "text": corpus.take(200)}]})
        elif kind == 1:
            out.append(
                {
                    "role": "assistant",
                    "model": "bench-model",
                    "usage": {"input_tokens": 1200, "output_tokens": 300, "cost_usd": 0.0021},
                    "parts": [
                        {"type": "text", "text": corpus.take(rnd.randint(2000, 8000))},
                        {
                            "type": "tool_call",
                            "id": f"call_{i}",
                            "name": "run_command",
                            "input": {"command": corpus.take(60)},
                        },
                    ],
                }
            )
        elif kind == 2:
            out.append(
                {
                    "role": "tool",
                    "parts": [
                        {
                            "type": "tool_result",
                            "tool_call_id": f"call_{i - 1}",
                            "output": corpus.take(rnd.randint(200, 60_000)),
                        }
                    ],
                }
            )
        else:
            out.append(
                {
                    "role": "assistant",
                    "model": "bench-model",
                    "parts": [{"type": "text", "text": corpus.take(rnd.randint(2000, 8000))}],
                }
            )
    return out


def _line(corpus: Corpus, size: int) -> str:
    return corpus.take(size).replace("\n", " ").strip()


def _code(corpus: Corpus, lines: int) -> str:
    """Python-looking lines, for Pygments to colour."""
    rnd = corpus.rnd
    out = [f"def {rnd.choice(_WORDS)}_{rnd.choice(_WORDS)}(path, config):"]
    for _ in range(lines - 1):
        a, b, c = (rnd.choice(_WORDS) for _ in range(3))
        out.append(
            rnd.choice(
                (
                    f"    {a}_{b} = {c}(path, {rnd.randint(0, 99)})",
                    f"    if {a} is not None and {b}:",
                    f'        raise ValueError("{a} {b} {c}")',
                    f"    for {a} in {b}.{c}():",
                    f"        result.append({a}.{b}({c!r}))",
                    f"    return {a}_{b}",
                )
            )
        )
    return "\n".join(out)


def chat(count: int, seed: int = 11) -> list[dict[str, Any]]:
    """A conversation as a share page shows it: a user prompt; an assistant reply in Markdown
    with a list, inline code and a fenced Python block, and a tool call; the tool's output
    (2-6 KB); a short Markdown summary; repeated."""
    corpus = Corpus(seed)
    rnd = corpus.rnd
    out: list[dict[str, Any]] = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            text = corpus.take(rnd.randint(150, 400))
            out.append({"role": "user", "parts": [{"type": "text", "text": text}]})
        elif kind == 1:
            items = "\n".join(
                f"- `{rnd.choice(_WORDS)}.{rnd.choice(_WORDS)}()` {_line(corpus, 80)}"
                for _ in range(3)
            )
            text = (
                f"{corpus.take(rnd.randint(300, 700))}\n\n{items}\n\n"
                f"```python\n{_code(corpus, rnd.randint(12, 30))}\n```\n\n"
                f"{corpus.take(rnd.randint(100, 300))}"
            )
            out.append(
                {
                    "role": "assistant",
                    "model": "bench-model",
                    "usage": {"input_tokens": 1200, "output_tokens": 300, "cost_usd": 0.0021},
                    "parts": [
                        {"type": "text", "text": text},
                        {
                            "type": "tool_call",
                            "id": f"call_{i}",
                            "name": "run_command",
                            "input": {"command": f"pytest -q tests/test_{rnd.choice(_WORDS)}.py"},
                        },
                    ],
                }
            )
        elif kind == 2:
            output = corpus.take(rnd.randint(2000, 6000))
            out.append(
                {
                    "role": "tool",
                    "parts": [
                        {"type": "tool_result", "tool_call_id": f"call_{i - 1}", "output": output}
                    ],
                }
            )
        else:
            text = f"**Done.** {corpus.take(rnd.randint(200, 600))}\n\n1. {_line(corpus, 60)}\n2. {_line(corpus, 60)}"
            out.append(
                {
                    "role": "assistant",
                    "model": "bench-model",
                    "parts": [{"type": "text", "text": text}],
                }
            )
    return out
