"""Figures of the secret scan, on the generated corpus of tests/fixtures/secrets_corpus.py
(174 sessions holding 228 planted secrets of 29 kinds, 160 clean coding sessions): recall
(a secret counts as found only when redacting the findings leaves no 12 characters of it
behind), clean sessions passed (1 - the false-positive rate), and the scan's time against the
scan it replaced (bench/secrets_before.py), on the same sessions in the same run, the two
measured in alternation so that the load of the machine falls on both alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from tests.fixtures import secrets_corpus as corpus

from baton.core.redaction import redact_value, strings_in
from baton.scanning import SecretScanner
from bench.secrets_before import BeforeScanner
from bench.timing import paired_medians

Record = Callable[..., None]
RECALL, PASSED = 0.98, 0.98


class Finder(Protocol):
    def find(self, value: Any) -> dict[str, str]: ...


def residue(secret: str, published: str) -> bool:
    """Whether any 12 characters of `secret` (all of it, if shorter) are still published."""
    width = min(12, len(secret))
    return any(
        secret[i : i + width] in published for i in range(0, len(secret) - width + 1, width // 2)
    )


def measure(scanner: Finder) -> tuple[int, int, int, int, dict[str, int]]:
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
    before = BeforeScanner(corpus.CLEAN_ENV)
    found, planted, flagged, clean, missed = measure(scanner)
    b_found, _, b_flagged, _, _ = measure(before)
    recall = found / planted
    record(
        f"secret scan: planted secrets found whole ({planted} of {len(corpus.KINDS)} kinds)",
        f"{found}/{planted} = {recall:.1%}" + (f"; missed {missed}" if missed else ""),
        recall,
        f"≥ {RECALL:.0%}",
        recall >= RECALL,
        f"the rules before: {b_found}/{planted} = {b_found / planted:.1%}",
    )
    passed = 1 - flagged / clean
    record(
        f"secret scan: clean coding sessions without a finding ({clean})",
        f"{clean - flagged}/{clean} (false positives {flagged / clean:.1%})",
        passed,
        f"≥ {PASSED:.0%}",
        passed >= PASSED,
        f"the rules before: false positives {b_flagged}/{clean} = {b_flagged / clean:.1%}"
        " (GIT_AUTHOR_NAME, GIT_AUTHOR_EMAIL in the environment)",
    )
    sessions = [s.messages for s in corpus.planted() + corpus.clean()]
    megabytes = sum(len(t) for m in sessions for t in strings_in(m)) / 1e6
    repeat = 1 if quick else 15

    def scan(finder: Finder) -> Callable[[], None]:
        def go() -> None:
            for messages in sessions:
                finder.find(messages)

        return go

    t_before, t_scan = paired_medians(scan(before), scan(scanner), repeat, 1)
    ratio = t_scan / t_before
    record(
        f"secret scan of {megabytes:.1f} MB of sessions vs the rules before",
        f"{megabytes / t_scan:.1f} MB/s vs {megabytes / t_before:.1f} MB/s",
        ratio,
        "≤ 1×",
        ratio <= 1,
    )
