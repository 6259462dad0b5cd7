"""The secret scan as it was before baton's own rules (2026-12): detect-secrets' pattern
plugins plus five rules, a required literal per pattern taken from CPython's private regex
parser, and `*AUTH*`-style environment names. Kept only as the bench's baseline, measured in
the same run as the scan that replaced it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Mapping
from typing import Any

from ahocorasick_rs import AhoCorasick, MatchKind

from baton.core.redaction import strings_in

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASS|CREDENTIAL|AUTH)", re.I)
_SKIP = {
    "IPPublicDetector",
    "CloudantDetector",
    "IbmCloudIamDetector",
    "IbmCosHmacDetector",
    "SoftlayerDetector",
}
_EXTRA = (
    ("OpenAI Token", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}"),
    ("Anthropic API Key", r"\bsk-ant-[A-Za-z0-9_-]{32,}"),
    ("Google API Key", r"\bAIza[0-9A-Za-z_-]{35}"),
    ("Hugging Face Token", r"\bhf_[A-Za-z0-9]{34,}"),
    ("GitHub Token", r"\bgithub_pat_[A-Za-z0-9_]{60,}"),
    (
        "Private Key",
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    ),
)
_PREFILTER = {
    "Telegram Bot Token": re.compile(r":[0-9A-Za-z_-]{35}"),
    "Discord Bot Token": re.compile(r"\.[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}"),
}


def _required_literal(regex: re.Pattern[str]) -> str | None:
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


class BeforeScanner:
    def __init__(self, env: Mapping[str, str]) -> None:
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
                    and name not in _SKIP
                ):
                    plugin = cls()
                    found.extend((str(plugin.secret_type), regex) for regex in plugin.denylist)
        found.extend((kind, re.compile(pattern)) for kind, pattern in _EXTRA)
        self.patterns = [
            (kind, regex, _required_literal(regex), bool(regex.flags & re.IGNORECASE))
            for kind, regex in found
        ]
        exact = sorted({lit for _, _, lit, folded in self.patterns if lit and not folded})
        folded = sorted({lit for _, _, lit, folded in self.patterns if lit and folded})
        self.exact = AhoCorasick(exact, matchkind=MatchKind.Standard)
        self.folded = AhoCorasick(folded, matchkind=MatchKind.Standard)
        self.env_secrets = {
            value: f"environment variable {name}"
            for name, value in env.items()
            if _SECRET_NAME.search(name) and len(value) >= 8
        }

    def find(self, value: Any) -> dict[str, str]:
        found: dict[str, str] = {}
        for text in strings_in(value):
            if len(text) < 8:
                continue
            present = set(self.exact.find_matches_as_strings(text, overlapping=True))
            present_folded = set(
                self.folded.find_matches_as_strings(text.lower(), overlapping=True)
            )
            for kind, regex, literal, folded in self.patterns:
                if literal is not None:
                    if literal not in (present_folded if folded else present):
                        continue
                else:
                    prefilter = _PREFILTER.get(kind)
                    if prefilter is not None and prefilter.search(text) is None:
                        continue
                for match in regex.finditer(text):
                    groups = [g for g in match.groups() if g and len(g) >= 8]
                    secret = (groups[-1] if groups else match.group(0)).strip(" \t\r\n=:\"'")
                    if secret:
                        found.setdefault(secret, kind)
            for secret, kind in self.env_secrets.items():
                if secret in text:
                    found.setdefault(secret, kind)
        return found
