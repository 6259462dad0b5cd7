"""What a share would publish that holds a secret: the header, the messages (hydrated), the
git patch and the git bundle; and the git snapshot as a share shows it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from baton.core.attachments import name_of
from baton.core.errors import InvalidInput, NotFound
from baton.core.models import JSON, Message, Session, StoredMessage
from baton.core.redaction import mask, redact_value, strings_in
from baton.scanning import RULES_VERSION, SecretScanner
from baton.service.common import Ports, hydrate

GIT_PATCH = "git patch"
GIT_BUNDLE = "git bundle"
ENVIRONMENT_SECRET = "environment secret"  # a finding's kind: `environment secret API_TOKEN`
UNOPENED = "unscanned environment secrets"

Found = tuple[JSON, dict[str, str]]  # a finding, and the secrets behind it (kind by secret)


@dataclass
class Scan:
    """The findings of a session, and what was read to find them: the messages flagged when
    they were recorded, and every message hydrated so far (by id), so that redacting reads
    neither again."""

    found: list[Found] = field(default_factory=list)
    flagged: list[StoredMessage] = field(default_factory=list)
    hydrated: dict[str, Message] = field(default_factory=dict)

    def full(self, p: Ports, message: Message) -> Message:
        """`message` hydrated, read once however often it is asked for."""
        done = self.hydrated.get(message.id)
        if done is None:
            done = self.hydrated[message.id] = hydrate(p, message)
        return done


def scan(
    p: Ports,
    session: Session,
    code: bool = True,
    known: Mapping[str, str] | None = None,
    unopened: tuple[str, ...] = (),
) -> Scan:
    """Every secret in what a share publishes: the header, the messages (hydrated), and
    with `code` the git patch and every commit, file and file name of the git bundle.
    Messages are read only where they were flagged when recorded (or rescanned: `rescan`
    runs first, once, when the store's messages were scanned with older rules; `settle`
    scans what imports left unscanned).

    `known` (value -> `environment secret NAME`): the secrets of the environments the
    session's runs used, found wherever they are (a run's agent may have written one into a
    file: the patch or bundle holds it); such a finding names the secret, never a piece of
    it. `unopened`: environments whose secrets cannot be opened: the code, unscanned for
    them, is a finding (what is not scanned is not published)."""
    if stale(p):
        rescan(p)
    settle(p)
    result = Scan()
    scanner = p.scanner.including(known or {})
    result.found = found = [(named(f), s) for f, s in _scan(p, scanner, session, code, result)]
    git = session.git or {}
    for name in unopened if code else ():
        for where, entry in ((GIT_PATCH, "patch"), (GIT_BUNDLE, "bundle")):
            if isinstance(git.get(entry), dict):
                excerpt = f"the secrets of environment {name} cannot be opened on this server"
                unread: JSON = {
                    "where": where,
                    "kind": UNOPENED,
                    "excerpt": excerpt,
                    "redactable": False,
                }
                found.append((unread, {}))
    return result


def named(finding: JSON) -> JSON:
    """A finding of an environment's secret says its name only (no piece of the value)."""
    kind = str(finding.get("kind", ""))
    if kind.startswith(ENVIRONMENT_SECRET + " "):
        return {**finding, "excerpt": f"[SECRET:{kind[len(ENVIRONMENT_SECRET) + 1 :]}]"}
    return finding


def _scan(
    p: Ports, scanner: SecretScanner, session: Session, code: bool, result: Scan
) -> list[Found]:
    found: list[Found] = []
    header = {
        "title": session.title,
        "task": session.task,
        "metadata": session.metadata,
        "git": session.git,
    }
    for name, value in header.items():
        for secret, kind in scanner.find(value).items():
            found.append(({"where": name, "kind": kind, "excerpt": mask(secret)}, {secret: kind}))
    patch = (session.git or {}).get("patch") if code else None
    if isinstance(patch, dict) and isinstance(patch.get("sha256"), str):
        data = p.blobs.get(patch["sha256"])
        text = data.decode("utf-8", "replace") if data else ""
        for secret, kind in scanner.find(text).items():
            found.append(
                ({"where": GIT_PATCH, "kind": kind, "excerpt": mask(secret)}, {secret: kind})
            )
    if code:
        found.extend(bundle_findings(p, session.git, scanner))
    if session.head is None:
        return found
    result.flagged = p.store.flagged(session.head)
    for sm in result.flagged:
        parts = result.full(p, sm.message).parts
        secrets = scanner.find(parts)
        where = {
            "where": f"message {sm.depth + 1}",
            "message": sm.message.id,
            "position": sm.depth + 1,
        }
        if not secrets:
            # Found when it was recorded (say, with an environment variable that this
            # process lacks): it still blocks, but it cannot be redacted automatically.
            for f in sm.findings:
                unlocated = {
                    **where,
                    "kind": f["kind"],
                    "excerpt": f["excerpt"],
                    "redactable": False,
                }
                found.append((unlocated, {}))
        for secret, kind in secrets.items():
            finding = {**where, "kind": kind, "excerpt": mask(secret)}
            file_name = file_holding(parts, secret)
            if file_name is not None:  # said without the secrets a file name can hold
                shown: str = redact_value(file_name, secrets)
                finding.update(file=shown, where=f"message {sm.depth + 1}, file {shown}")
            found.append((finding, {secret: kind}))
    return found


def file_holding(parts: list[JSON], secret: str) -> str | None:
    """The name of the first file part that holds `secret` (in its name, its text, or what
    its encoded bytes say), if a file holds it."""
    for part in parts:
        if part.get("type") == "file" or part.get("of") == "file":
            if any(secret in text for text in strings_in(part)):
                return name_of(part) or "(unnamed)"
    return None


def bundle_findings(
    p: Ports, git: JSON | None, scanner: SecretScanner | None = None
) -> list[Found]:
    """The secrets in the commits of the session's git bundle, each once, where it first
    appears (`git bundle: commit abc1234 (config.py)`). A bundle that cannot be read is
    a finding too: what is not scanned is not published."""
    from baton import gitstate

    bundle = (git or {}).get("bundle")
    if not isinstance(bundle, dict) or not isinstance(bundle.get("sha256"), str):
        return []
    data = p.blobs.get(bundle["sha256"])
    try:
        texts = gitstate.bundle_texts(data) if data is not None else []
    except InvalidInput as exc:
        unread: JSON = {
            "where": GIT_BUNDLE,
            "kind": "unscanned bundle",
            "excerpt": exc.message,
            "redactable": False,
        }
        return [(unread, {})]
    found: list[Found] = []
    seen: set[str] = set()
    for where, text in texts:
        for secret, kind in (scanner or p.scanner).find(text).items():
            if secret not in seen:
                seen.add(secret)
                finding = {
                    "where": f"{GIT_BUNDLE}: {where}",
                    "kind": kind,
                    "excerpt": mask(secret),
                }
                found.append((finding, {secret: kind}))
    # A file name can be the secret: where it was found is said without it.
    secrets = {s: k for _, one in found for s, k in one.items()}
    return [({**f, "where": redact_value(f["where"], secrets)}, s) for f, s in found]


def holds(value: Any, secrets: dict[str, str]) -> bool:
    return any(secret in text for text in strings_in(value) for secret in secrets)


def of_environment(finding: JSON) -> bool:
    """Whether a finding is an environment's secret (or code unscanned for one)."""
    kind = str(finding.get("kind", ""))
    return kind.startswith(ENVIRONMENT_SECRET + " ") or kind == UNOPENED


def in_code(finding: JSON) -> bool:
    where = str(finding.get("where", ""))
    return where == GIT_PATCH or where.startswith(GIT_BUNDLE)


def public_git(
    git: JSON | None,
    secrets: dict[str, str],
    found: list[Found],
    mode: str,
    code: bool = True,
) -> JSON | None:
    """The git snapshot as a share shows it: without the sharer's local path; without the
    patch and bundle when shared without code; and under --redact without a patch or bundle
    that holds secrets, saying so (a patch or bundle is left out whole, never edited)."""
    if not git:
        return git
    public = {k: v for k, v in git.items() if k != "root"}
    if not code:
        public.update(patch=None, bundle=None, no_code=True)
    in_patch = [f for f, _ in found if f.get("where") == GIT_PATCH]
    if in_patch and mode == "redact":
        public["patch"] = None
        public["patch_dropped"] = f"the patch held {len(in_patch)} secret(s), so it is not shared"
    in_bundle = [f for f, _ in found if str(f.get("where", "")).startswith(GIT_BUNDLE)]
    if in_bundle and mode == "redact":
        commits = (git.get("bundle") or {}).get("commits")
        what = f"the bundle of {commits} commit(s)" if commits else "the bundle"
        unread = [f for f in in_bundle if f.get("redactable") is False]
        public["bundle"] = None
        public["bundle_dropped"] = (
            f"{what} could not be scanned ({unread[0]['excerpt']}), so it is not shared"
            if unread
            else f"{what} held {len(in_bundle)} secret(s), so it is not shared"
        )
    redacted: JSON = redact_value(public, secrets)
    return redacted


RESCAN_BATCH = 500


def stale(p: Ports) -> bool:
    """Whether the store holds messages scanned with older rules than this process's."""
    was = p.store.scan_rules()
    return was is not None and was < RULES_VERSION


def rescan(p: Ports, progress: Callable[[int, int], None] | None = None) -> JSON:
    """Rescan, once, every message when the store's were scanned with older rules: in chain
    order, hydrated; what the rules find now is added to what was found when each was
    recorded (never taken away: that was found with the recording process's environment),
    and the secret pointers of the messages after a newly flagged one follow. Then the store
    records the rules version, and a share reads only flagged messages again. The report
    names the live shares that publish a newly flagged message (`exposed_shares`).

    Appends may go on meanwhile (they are scanned with these rules): one whose parent's
    pointer moves between the pass reading and writing it keeps the pointer it was given.
    Last, what imports left unscanned is scanned (`settle`)."""
    was = p.store.scan_rules()
    report: JSON = {
        "rules": RULES_VERSION,
        "was": was,
        "rescanned": 0,
        "flagged": 0,
        "exposed_shares": [],
    }
    if was is None or was >= RULES_VERSION:
        settled, flagged = settle(p, progress)  # what imports left unscanned
        report.update(rescanned=settled, flagged=len(flagged))
        return report
    total = p.store.count_messages()
    pointers: dict[str, str] = {}  # message id -> its new secret pointer, in this tree
    root: str | None = None
    after: tuple[str, int, str] | None = None
    done = 0
    newly: set[str] = set()
    while batch := p.store.messages_in_order(after, RESCAN_BATCH):
        texts: list[tuple[list[str], list[str]]] = [
            (strings_in(_readable(p, sm.message).parts), []) for sm in batch
        ]
        scanned = p.scanner.findings_many(texts).get()
        updates: list[tuple[str, list[JSON], str | None]] = []
        for sm, found in zip(batch, scanned, strict=True):
            if sm.root != root:  # a tree's messages come together: its parents are done
                root, pointers = sm.root, {}
            findings = [*sm.findings, *(f for f in found if f not in sm.findings)]
            parent = sm.message.parent
            pointer = sm.message.id if findings else pointers.get(parent) if parent else None
            if pointer is not None:
                pointers[sm.message.id] = pointer
            if findings != sm.findings or pointer != sm.flagged:
                updates.append((sm.message.id, findings, pointer))
            if findings and not sm.findings:
                newly.add(sm.message.id)
        p.store.set_findings(updates)
        done += len(batch)
        last = batch[-1]
        after = (last.root, last.depth, last.message.id)
        if progress is not None:
            progress(done, max(total, done))
    p.store.set_scan_rules(RULES_VERSION)
    # Shares published before the rules could see what they hold: revoking is the owner's call.
    now = p.now()
    exposed = [
        s.id
        for s in p.store.list_shares()
        if s.state(now) == "live"
        and s.head is not None
        and any(sm.message.id in newly for sm in p.store.flagged(s.head))
    ]
    newly |= settle(p, progress)[1]  # what imports left unscanned (the pass read them too)
    report.update(rescanned=done, flagged=len(newly), exposed_shares=exposed)
    return report


SETTLE_BATCH = 1000


def settle(p: Ports, progress: Callable[[int, int], None] | None = None) -> tuple[int, set[str]]:
    """Scan the messages imports stored unscanned (`Store.defers_scan`), a batch at a time in
    worker processes, and record their findings and the secret pointers after them, before
    anything reads findings (a share, a rescan, a copy to another store). Returns how many
    were scanned, and the ids of those that hold a secret."""
    done, flagged = 0, set[str]()
    batch = p.store.unscanned(SETTLE_BATCH)
    if not batch:
        return 0, flagged
    total = p.store.count_unscanned()
    with p.scanner.batches() as start:
        while batch:
            found = start([strings_in(_readable(p, sm.message).parts) for sm in batch]).get()
            p.store.settle_scan([(sm.message.id, f) for sm, f in zip(batch, found, strict=True)])
            done += len(batch)
            flagged.update(sm.message.id for sm, f in zip(batch, found, strict=True) if f)
            if progress is not None:
                progress(done, max(total, done))
            batch = p.store.unscanned(SETTLE_BATCH)
    return done, flagged


def _readable(p: Ports, message: Message) -> Message:
    """The message hydrated; as stored (its blobs' previews) when a blob is missing."""
    try:
        return hydrate(p, message)
    except NotFound:
        return message
