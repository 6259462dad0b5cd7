"""The secret scan of DESIGN §7: detect-secrets' pattern plugins plus the values of the
caller's secret-looking environment variables."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

from baton.core.models import JSON
from baton.core.redaction import mask, strings_in

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASS|CREDENTIAL|AUTH)", re.I)
_MIN_ENV_SECRET = 8
# Pattern plugins only: the entropy and keyword plugins flag ordinary code as secrets, and the
# keyword-shaped pattern plugins below cost ten times the rest for little gain.
_SKIP_PLUGINS = {
    "IPPublicDetector",
    "CloudantDetector",
    "IbmCloudIamDetector",
    "IbmCosHmacDetector",
    "SoftlayerDetector",
}
# Current key formats that detect-secrets 1.5 does not know yet.
_EXTRA = (
    ("OpenAI Token", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}"),
    ("Anthropic API Key", r"\bsk-ant-[A-Za-z0-9_-]{32,}"),
    ("Google API Key", r"\bAIza[0-9A-Za-z_-]{35}"),
    ("Hugging Face Token", r"\bhf_[A-Za-z0-9]{34,}"),
    ("GitHub Token", r"\bgithub_pat_[A-Za-z0-9_]{60,}"),
    # The whole block, so that --redact removes the key and not just its first line.
    (
        "Private Key",
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    ),
)


# Patterns with no literal to look for first get a cheap regex that every match must match:
# anchored on a rare character, it rules out most text at C speed.
_PREFILTER = {
    "Telegram Bot Token": re.compile(r":[0-9A-Za-z_-]{35}"),
    "Discord Bot Token": re.compile(r"\.[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}"),
}


@lru_cache(maxsize=1)
def _patterns() -> tuple[tuple[str, re.Pattern[str], str | None, bool], ...]:
    """(kind, regex, a literal every match contains or None, whether to compare lowercased)."""
    import importlib
    import inspect
    import pkgutil

    import detect_secrets.plugins as plugins
    from detect_secrets.plugins.base import RegexBasedDetector

    found: list[tuple[str, re.Pattern[str]]] = []
    for info in pkgutil.iter_modules(plugins.__path__):
        module = importlib.import_module(f"detect_secrets.plugins.{info.name}")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, RegexBasedDetector)
                and cls is not RegexBasedDetector
                and cls.__module__ == module.__name__
                and name not in _SKIP_PLUGINS
            ):
                plugin = cls()
                found.extend((str(plugin.secret_type), regex) for regex in plugin.denylist)
    found.extend((kind, re.compile(pattern)) for kind, pattern in _EXTRA)
    return tuple(
        (kind, regex, _required_literal(regex), bool(regex.flags & re.IGNORECASE))
        for kind, regex in found
    )


@lru_cache(maxsize=1)
def _literals() -> tuple[Any, Any]:
    """Automata of the patterns' required literals: as written, and lowercased."""
    from ahocorasick_rs import AhoCorasick, MatchKind

    exact = sorted({lit for _, _, lit, folded in _patterns() if lit and not folded})
    folded = sorted({lit for _, _, lit, folded in _patterns() if lit and folded})
    return (
        AhoCorasick(exact or ["\x00never"], matchkind=MatchKind.Standard),
        AhoCorasick(folded or ["\x00never"], matchkind=MatchKind.Standard),
    )


def _required_literal(regex: re.Pattern[str]) -> str | None:
    """The longest run of plain characters every match must contain, if any: checking for it
    with `in` first lets most text skip the regex altogether."""
    from re import _constants, _parser  # type: ignore[attr-defined]

    best, run = "", ""

    def walk(items: Any) -> None:
        nonlocal best, run
        for op, arg in items:
            if op is _constants.LITERAL:
                run += chr(arg)
            elif op is _constants.SUBPATTERN and len(arg[-1]) > 0:
                walk(arg[-1])
            else:
                best, run = max(best, run, key=len), ""

    walk(_parser.parse(regex.pattern, regex.flags))
    best = max(best, run, key=len)
    if len(best) < 2:
        return None
    return best.lower() if regex.flags & re.IGNORECASE else best


def secret_env_values(env: Mapping[str, str]) -> dict[str, str]:
    """value -> kind for environment variables whose names look like secrets."""
    return {
        value: f"environment variable {name}"
        for name, value in env.items()
        if _SECRET_NAME.search(name) and len(value) >= _MIN_ENV_SECRET
    }


class SecretScanner:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env_secrets = secret_env_values(env or {})

    def find(self, value: Any, extra: Iterable[str] = ()) -> dict[str, str]:
        """secret value -> kind, for every secret in the strings inside `value`."""
        found: dict[str, str] = {}
        exact, folded_literals = _literals()
        for text in [*strings_in(value), *extra]:
            if len(text) < _MIN_ENV_SECRET:
                continue
            # One pass over the text finds which patterns' literals it holds (Aho-Corasick);
            # only their regexes run.
            present = set(exact.find_matches_as_strings(text, overlapping=True))
            present_folded = set(
                folded_literals.find_matches_as_strings(text.lower(), overlapping=True)
            )
            for kind, regex, literal, folded in _patterns():
                if literal is not None:
                    if literal not in (present_folded if folded else present):
                        continue
                else:
                    prefilter = _PREFILTER.get(kind)
                    if prefilter is not None and prefilter.search(text) is None:
                        continue
                for match in regex.finditer(text):
                    # A pattern's group holds the secret itself (a password in a URL, a key
                    # after `aws_secret=`); short groups are prefixes such as `ghp`.
                    groups = [g for g in match.groups() if g and len(g) >= _MIN_ENV_SECRET]
                    secret = (groups[-1] if groups else match.group(0)).strip(" \t\r\n=:\"'")
                    if secret:
                        found.setdefault(secret, kind)
            for secret, kind in self.env_secrets.items():
                if secret in text:
                    found.setdefault(secret, kind)
        return found

    def findings(self, value: Any, extra: Iterable[str] = ()) -> list[JSON]:
        """What to show a person: the kind and a masked excerpt, never the secret itself."""
        return [
            {"kind": kind, "excerpt": mask(secret)}
            for secret, kind in sorted(self.find(value, extra).items(), key=lambda kv: kv[1])
        ]

    def findings_many(self, texts: list[tuple[list[str], list[str]]]) -> Pending:
        """Start `findings` for many messages' (strings, extra texts) in worker processes
        (forks of this one, which see `texts` without copying them), leaving this process a
        core for its own work; `Pending.get()` waits for the findings."""
        import multiprocessing
        import os

        workers = max(1, min(os.cpu_count() or 1, 8))
        if len(texts) < 2 or (os.cpu_count() or 1) < 2:
            return Pending(lambda: [self.findings(strings, extra) for strings, extra in texts])
        step = -(-len(texts) // workers)
        ranges = [(i, min(i + step, len(texts))) for i in range(0, len(texts), step)]
        global _WORKER_SCANNER, _WORKER_TEXTS
        _WORKER_SCANNER, _WORKER_TEXTS = self, texts
        try:
            pool = multiprocessing.get_context("fork").Pool(len(ranges))
        finally:
            _WORKER_SCANNER, _WORKER_TEXTS = None, []
        pending = pool.map_async(_scan_range, ranges)

        def wait() -> list[list[JSON]]:
            try:
                parts = pending.get()
            finally:
                pool.terminate()
                pool.join()
            return [found for part in parts for found in part]

        def cancel() -> None:
            pool.terminate()
            pool.join()

        return Pending(wait, cancel)


class Pending:
    """Findings being computed: `get()` waits for them, `cancel()` gives them up."""

    def __init__(
        self, wait: Callable[[], list[list[JSON]]], cancel: Callable[[], None] | None = None
    ) -> None:
        self._wait = wait
        self._cancel = cancel

    def get(self) -> list[list[JSON]]:
        return self._wait()

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel()


_WORKER_SCANNER: SecretScanner | None = None
_WORKER_TEXTS: list[tuple[list[str], list[str]]] = []


def _scan_range(bounds: tuple[int, int]) -> list[list[JSON]]:
    scanner = _WORKER_SCANNER
    assert scanner is not None  # set before the pool forks
    return [scanner.findings(strings, extra) for strings, extra in _WORKER_TEXTS[slice(*bounds)]]
