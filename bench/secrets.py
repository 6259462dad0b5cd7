"""Figures of the secret scan, on the generated corpus of tests/fixtures/secrets_corpus.py
(168 sessions holding 216 planted secrets of 28 kinds, 160 clean coding sessions): recall
(a secret counts as found only when redacting the findings leaves none of its characters
behind), clean sessions passed (1 - the false-positive rate), and the scan's throughput
against `orjson.loads` of the same bytes, measured in the same run."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from tests.fixtures import secrets_corpus as corpus

from baton.core.redaction import redact_value, strings_in
from baton.scanning import SecretScanner
from bench.timing import paired_medians

Record = Callable[..., None]
RECALL, PASSED = 0.98, 0.98
# The scan with the rules this replaced (detect-secrets' pattern plugins and five rules of
# baton's) took 13 to 18 times (median 16) as long as `orjson.loads` of this corpus, measured in
# alternation on the project's 2-core machine (2026-12); it found 122 of the 216 secrets whole
# and flagged 95 of the 160 clean sessions (through GIT_AUTHOR_NAME and GIT_AUTHOR_EMAIL).
BEFORE = 16.0


def residue(secret: str, published: str) -> bool:
    """Whether any 12 characters of `secret` (all of it, if shorter) are still published."""
    width = min(12, len(secret))
    return any(
        secret[i : i + width] in published for i in range(0, len(secret) - width + 1, width // 2)
    )


def measure(scanner: SecretScanner) -> tuple[int, int, int, int, dict[str, int]]:
    """(secrets found whole, secrets planted, clean sessions with a finding, clean sessions,
    misses by kind)."""
    found = planted = 0
    missed: dict[str, int] = {}
    for sample in corpus.planted():
        secrets = scanner.find(sample.messages)
        published = "\n".join(strings_in(redact_value(sample.messages, secrets)))
        for secret in sample.planted:
            planted += 1
            if residue(secret.secret, published):
                missed[secret.kind] = missed.get(secret.kind, 0) + 1
            else:
                found += 1
    clean = corpus.clean()
    flagged = sum(1 for sample in clean if scanner.find(sample.messages))
    return found, planted, flagged, len(clean), missed


def run(quick: bool, record: Record) -> None:
    scanner = SecretScanner(corpus.CLEAN_ENV)
    found, planted, flagged, clean, missed = measure(scanner)
    recall = found / planted
    record(
        f"secret scan: planted secrets found whole ({planted} of {len(corpus.KINDS)} kinds)",
        f"{found}/{planted} = {recall:.1%}" + (f"; missed {missed}" if missed else ""),
        recall,
        f"≥ {RECALL:.0%}",
        recall >= RECALL,
    )
    passed = 1 - flagged / clean
    record(
        f"secret scan: clean coding sessions without a finding ({clean})",
        f"{clean - flagged}/{clean} (false positives {flagged / clean:.1%})",
        passed,
        f"≥ {PASSED:.0%}",
        passed >= PASSED,
    )
    sessions = [s.messages for s in corpus.planted() + corpus.clean()]
    data = [orjson.dumps(m) for m in sessions]
    megabytes = sum(map(len, data)) / 1e6
    repeat = 3 if quick else 7

    def scan() -> None:
        for messages in sessions:
            scanner.find(messages)

    def parse() -> None:
        for raw in data:
            orjson.loads(raw)

    t_parse, t_scan = paired_medians(parse, scan, repeat, 1)
    ratio = t_scan / t_parse
    record(
        f"secret scan of {megabytes:.1f} MB of sessions vs orjson.loads of the same",
        f"{megabytes / t_scan:.1f} MB/s vs {megabytes / t_parse:.0f} MB/s",
        ratio,
        f"≤ {BEFORE}× (the rules before)",
        ratio <= BEFORE,
    )
