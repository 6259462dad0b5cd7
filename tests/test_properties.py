"""Property tests (hypothesis): ids are stable across runs and key order, and no sequence of
append / retry / fork / share / revoke / expire / delete / gc breaks a reachable chain."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from baton.core.chain import link
from baton.core.errors import BatonError, Conflict, Gone, LiveShares, SecretsFound
from baton.core.ids import canonical_json, message_id
from baton.core.models import format_time, message_content, parse_time
from baton.core.validation import validate_message
from baton.scanning import SecretScanner
from baton.service import Service
from baton.store.blobs import LocalBlobStore, MemoryBlobStore
from baton.store.memory import MemoryStore
from baton.store.sqlite import SQLiteStore
from tests.helpers import stored_ids

# ids: stable across runs and key order

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
parts = st.lists(
    st.one_of(
        st.builds(lambda t: {"type": "text", "text": t}, st.text(max_size=40)),
        st.builds(
            lambda i, n, a: {"type": "tool_call", "id": i, "name": n, "input": a},
            st.text(max_size=8),
            st.text(max_size=8),
            json_values,
        ),
        st.builds(
            lambda i, o: {"type": "tool_result", "tool_call_id": i, "output": o},
            st.text(max_size=8),
            json_values,
        ),
    ),
    min_size=1,
    max_size=3,
)
contents = st.builds(
    message_content,
    st.none() | st.from_regex(r"m_[0-9a-f]{64}", fullmatch=True),
    st.sampled_from(["user", "assistant", "system", "tool"]),
    parts,
    st.sampled_from(["2026-01-01T00:00:00.000000Z", "2031-12-31T23:59:59.999999Z"]),
    st.none() | st.text(max_size=10),
    st.none() | st.fixed_dictionaries({"input_tokens": st.integers(0, 10**9)}),
)


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every object's keys in another order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


@given(contents, st.randoms(use_true_random=False))
def test_message_ids_ignore_key_order(content: dict[str, Any], rng: random.Random) -> None:
    again = shuffled(content, rng)
    assert canonical_json(again) == canonical_json(content)
    assert message_id(again) == message_id(content)


@settings(max_examples=60)
@given(
    st.sampled_from(["user", "assistant"]),
    parts,
    st.none() | st.text(max_size=10),
    st.randoms(use_true_random=False),
)
def test_a_message_sent_with_its_keys_in_any_order_gets_the_same_id(
    role: str, message_parts: list[dict[str, Any]], model: str | None, rng: random.Random
) -> None:
    raw: dict[str, Any] = {
        "role": role,
        "parts": message_parts,
        "created_at": "2026-01-01T00:00:00Z",
    }
    if model is not None:
        raw["model"] = model
    first = link(None, validate_message(raw, "2026-02-02T00:00:00.000000Z"), [])
    second = link(None, validate_message(shuffled(raw, rng), "2026-03-03T00:00:00.000000Z"), [])
    assert first.message.id == second.message.id
    assert first.message.id == message_id(first.message.content())


IDS_IN_ANOTHER_PROCESS = """
import json, sys
from baton.core.ids import message_id
for line in sys.stdin:
    print(message_id(json.loads(line)))
"""


@settings(max_examples=8, deadline=None)
@given(st.lists(contents, min_size=1, max_size=8))
def test_ids_are_stable_across_runs(batch: list[dict[str, Any]]) -> None:
    """Another interpreter, with another hash seed, reading the keys in reverse order,
    computes the same ids."""
    lines = "".join(
        json.dumps(dict(reversed(list(c.items()))), ensure_ascii=True) + "\n" for c in batch
    )
    env = {**os.environ, "PYTHONHASHSEED": str(random.randint(1, 2**31))}
    result = subprocess.run(
        [sys.executable, "-c", IDS_IN_ANOTHER_PROCESS],
        input=lines,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert result.stdout.split() == [message_id(c) for c in batch]


def test_a_known_message_keeps_its_known_id() -> None:
    """Changing the hashing breaks every stored id, so it must never happen by accident."""
    content = message_content(
        None, "user", [{"type": "text", "text": "héllo"}], "2026-01-01T00:00:00.000000Z", None, None
    )
    assert message_id(content) == (
        "m_ff458a8cac0a3d3755d8503a08346c512a2571ff8e09aefcc119006c411d3238"
    )


# any sequence of operations keeps every reachable chain verifiable

FAKE_KEY = "sk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5xY7w"
ENV_TOKEN = "tok-4f9a8b7c6d5e"


class Clock:
    def __init__(self) -> None:
        self.time = parse_time("2026-03-01T12:00:00.000000Z")

    def __call__(self) -> str:
        self.time += timedelta(milliseconds=1)
        return format_time(self.time)


@dataclass
class SessionModel:
    owner: str
    ids: list[str]
    secret: list[bool]  # per message: does it hold a secret
    titled: bool = False  # has the title been set (from the first user prompt, or given)
    title_secret: bool = False  # does the title hold a secret
    last: tuple[str | None, list[dict[str, Any]], list[str]] | None = None  # base, batch, ids


@dataclass
class ShareModel:
    owner: str
    session: str
    public: list[str]  # the ids the share serves
    secret: list[bool]  # per public message: does it hold a secret
    title_secret: bool
    redacted_from: int | None  # position of the first redacted copy, if any
    expires_at: str | None
    revoked: bool = False

    def live(self, now: str) -> bool:
        return not self.revoked and (self.expires_at is None or self.expires_at > now)


picks = st.integers(0, 10_000)


class Chains(RuleBasedStateMachine):
    kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.folder: Path | None = None
        if self.kind == "sqlite":
            self.folder = Path(tempfile.mkdtemp(prefix="baton-props-"))
            store: Any = SQLiteStore(self.folder / "baton.db", synchronous="OFF")
            blobs: Any = LocalBlobStore(self.folder / "blobs")
        else:
            store, blobs = MemoryStore(), MemoryBlobStore()
        self.service = Service(
            store, blobs, scanner=SecretScanner({"MY_SERVICE_TOKEN": ENV_TOKEN}), clock=self.clock
        )
        self.accounts = [self.service.account(h).id for h in ("alice", "bob")]
        self.sessions: dict[str, SessionModel] = {}
        self.shares: dict[str, ShareModel] = {}
        self.counter = 0

    def teardown(self) -> None:
        if self.kind == "sqlite":
            store = self.service.store
            assert isinstance(store, SQLiteStore)
            assert store.integrity_check() == "ok"
            store.close()
            assert self.folder is not None
            shutil.rmtree(self.folder, ignore_errors=True)

    # helpers
    def pick_session(self, n: int) -> tuple[str, SessionModel]:
        sid = list(self.sessions)[n % len(self.sessions)]
        return sid, self.sessions[sid]

    def pick_share(self, n: int) -> tuple[str, ShareModel]:
        share_id = list(self.shares)[n % len(self.shares)]
        return share_id, self.shares[share_id]

    def message(self, kind: str) -> tuple[dict[str, Any], bool]:
        """A new message of this kind, and whether it holds a secret."""
        self.counter += 1
        created = self.clock()
        if kind == "big":
            output = f"{self.counter} " + "b" * 66_000
            part = {"type": "tool_result", "tool_call_id": f"c{self.counter}", "output": output}
            return {"role": "tool", "parts": [part], "created_at": created}, False
        text = {
            "text": f"turn {self.counter}",
            "secret": f"turn {self.counter} key {FAKE_KEY}",
            "env": f"turn {self.counter} MY_SERVICE_TOKEN={ENV_TOKEN}",
            # over 64 KiB: a blob, with the secret past the preview that titles are made of
            "big_secret": f"turn {self.counter} " + "s" * 66_000 + f" {FAKE_KEY}",
        }[kind]
        message = {
            "role": "user" if self.counter % 2 else "assistant",
            "parts": [{"type": "text", "text": text}],
            "created_at": created,
            "usage": {"input_tokens": self.counter, "cost_usd": 0.001},
        }
        return message, kind != "text"

    # rules
    @initialize()
    def one_session_each(self) -> None:
        for who in (0, 1):
            self.create(who)

    @rule(who=st.integers(0, 1))
    def create(self, who: int) -> None:
        owner = self.accounts[who]
        session = self.service.create(owner)
        self.sessions[session.id] = SessionModel(owner, [], [])

    @precondition(lambda self: self.sessions)
    @rule(
        n=picks,
        kinds=st.lists(
            st.sampled_from(["text", "text", "big", "secret", "env", "big_secret"]),
            min_size=1,
            max_size=3,
        ),
    )
    def append(self, n: int, kinds: list[str]) -> None:
        sid, model = self.pick_session(n)
        made = [self.message(k) for k in kinds]
        batch = [m for m, _ in made]
        base = model.ids[-1] if model.ids else None
        result = self.service.append(model.owner, sid, batch, expected_head=base)
        added = [m.id for m in result.appended]
        assert len(added) == len(batch)
        assert result.appended[0].parent == base
        assert result.session.head == added[-1]
        model.ids += added
        model.secret += [secret for _, secret in made]
        model.last = (base, batch, added)
        if not model.titled:
            for (message, secret), kind in zip(made, kinds, strict=True):
                if message["role"] == "user":
                    model.titled, model.title_secret = True, secret and kind != "big_secret"
                    break

    @precondition(lambda self: any(m.last for m in self.sessions.values()))
    @rule(n=picks)
    def retry(self, n: int) -> None:
        """A client that lost the answer re-sends its last batch after the same head."""
        candidates = sorted(s for s, m in self.sessions.items() if m.last)
        sid = candidates[n % len(candidates)]
        model = self.sessions[sid]
        assert model.last is not None
        base, batch, added = model.last
        if model.ids[-1] == added[-1]:
            result = self.service.append(model.owner, sid, batch, expected_head=base)
            assert result.appended == [] and result.session.head == added[-1]
        else:
            with pytest.raises(Conflict) as caught:
                self.service.append(model.owner, sid, batch, expected_head=base)
            assert caught.value.current_head == model.ids[-1]

    @precondition(lambda self: any(m.ids for m in self.sessions.values()))
    @rule(n=picks)
    def stale_append(self, n: int) -> None:
        candidates = sorted(s for s, m in self.sessions.items() if m.ids)
        sid = candidates[n % len(candidates)]
        model = self.sessions[sid]
        stale = model.ids[-2] if len(model.ids) > 1 else None
        message, _ = self.message("text")
        with pytest.raises(Conflict) as caught:
            self.service.append(model.owner, sid, [message], expected_head=stale)
        assert caught.value.current_head == model.ids[-1]

    @precondition(lambda self: self.sessions)
    @rule(n=picks, at=st.none() | picks)
    def fork(self, n: int, at: int | None) -> None:
        sid, model = self.pick_session(n)
        cut = len(model.ids) if at is None or not model.ids else at % len(model.ids) + 1
        target = model.ids[cut - 1] if at is not None and model.ids else None
        fork = self.service.fork(model.owner, sid, at=target)
        assert fork.message_count == cut
        assert fork.forked_from == {"session": sid, "message": model.ids[cut - 1] if cut else None}
        self.sessions[fork.id] = SessionModel(
            model.owner, model.ids[:cut], model.secret[:cut], model.titled, model.title_secret
        )

    @precondition(lambda self: self.sessions)
    @rule(n=picks, mode=st.sampled_from(["block", "redact", "allow"]), expires=st.booleans())
    def share(self, n: int, mode: str, expires: bool) -> None:
        sid, model = self.pick_session(n)
        expiry = "1h" if expires else None
        if mode == "block" and (any(model.secret) or model.title_secret):
            with pytest.raises(SecretsFound) as caught:
                self.service.share(model.owner, sid, expires=expiry)
            found = caught.value.findings
            positions = {f["position"] for f in found if "position" in f}
            assert positions == {i + 1 for i, s in enumerate(model.secret) if s}
            assert any(f["where"] == "title" for f in found) == model.title_secret
            assert FAKE_KEY not in repr(found) and ENV_TOKEN not in repr(found)
            return
        share = self.service.share(model.owner, sid, mode=mode, expires=expiry)
        first = model.secret.index(True) if mode == "redact" and any(model.secret) else None
        public = [m.id for m in self.service.share_messages(share.id)]
        assert len(public) == share.message_count == len(model.ids)
        if first is None:
            assert public == model.ids and share.head == (model.ids[-1] if model.ids else None)
            secret = list(model.secret) if mode == "allow" else [False] * len(public)
        else:
            assert public[:first] == model.ids[:first]  # the clean prefix is shared as it is
            assert set(public[first:]).isdisjoint(model.ids)  # the rest are redacted copies
            secret = [False] * len(public)
        title_secret = model.title_secret and mode == "allow"
        self.shares[share.id] = ShareModel(
            model.owner, sid, public, secret, title_secret, first, share.expires_at
        )

    @precondition(lambda self: self.shares)
    @rule(n=picks, at=st.none() | picks)
    def fork_share(self, n: int, at: int | None) -> None:
        share_id, model = self.pick_share(n)
        other = self.accounts[1] if model.owner == self.accounts[0] else self.accounts[0]
        target = model.public[at % len(model.public)] if at is not None and model.public else None
        if not model.live(self.service.now()):
            with pytest.raises(Gone):
                self.service.fork(other, share_id, at=target)
            return
        fork = self.service.fork(other, share_id, at=target)
        cut = model.public.index(target) + 1 if target else len(model.public)
        assert fork.forked_from == {"share": share_id, "message": fork.head}
        assert fork.message_count == cut
        self.sessions[fork.id] = SessionModel(
            other, model.public[:cut], model.secret[:cut], True, model.title_secret
        )

    @precondition(lambda self: self.shares)
    @rule(n=picks)
    def revoke(self, n: int) -> None:
        share_id, model = self.pick_share(n)
        share = self.service.revoke(model.owner, share_id)
        assert share.revoked_at is not None
        model.revoked = True

    @rule(hours=st.integers(0, 2))
    def time_passes(self, hours: int) -> None:
        self.clock.time += timedelta(hours=hours, minutes=30)

    @precondition(lambda self: self.sessions)
    @rule(n=picks, revoke_shares=st.booleans())
    def delete(self, n: int, revoke_shares: bool) -> None:
        sid, model = self.pick_session(n)
        now = self.service.now()
        live = sorted(s for s, m in self.shares.items() if m.session == sid and m.live(now))
        before = stored_ids(self.service)
        if live and not revoke_shares:
            with pytest.raises(LiveShares) as caught:
                self.service.delete(model.owner, sid)
            assert sorted(caught.value.share_ids) == live
            assert stored_ids(self.service) == before
            return
        revoked = self.service.delete(model.owner, sid, revoke_shares=revoke_shares)
        assert sorted(revoked) == live
        for share_id in live:
            self.shares[share_id].revoked = True
        del self.sessions[sid]
        # what only this session (and its now dead shares) reached is gone
        mine = set(model.ids) | {
            i for m in self.shares.values() if m.session == sid for i in m.public
        }
        assert not (stored_ids(self.service) & mine) - self.reachable()

    @rule()
    def gc(self) -> None:
        self.service.gc()
        assert stored_ids(self.service) == self.reachable()
        assert self.service.gc() == {"messages_deleted": 0, "blobs_deleted": 0}

    def reachable(self) -> set[str]:
        now = self.service.now()
        found = {i for m in self.sessions.values() for i in m.ids}
        found |= {i for m in self.shares.values() if m.live(now) for i in m.public}
        return found

    # what must hold after every step
    @invariant()
    def every_reachable_chain_verifies(self) -> None:
        report = self.service.verify()
        assert report.ok, report.problems
        assert report.sessions == len(self.sessions)

    @invariant()
    def every_session_loads_its_full_chain(self) -> None:
        for sid, model in self.sessions.items():
            full = self.service.messages(model.owner, sid, hydrate=True)
            assert [m.id for m in full] == model.ids
            assert all(p["type"] != "blob_ref" for m in full for p in m.parts)
            assert self.service.get(model.owner, sid).message_count == len(model.ids)

    @invariant()
    def every_live_share_loads_and_every_dead_one_is_gone(self) -> None:
        now = self.service.now()
        for share_id, model in self.shares.items():
            if model.live(now):
                full = self.service.share_messages(share_id, hydrate=True)
                assert [m.id for m in full] == model.public
                text = orjson.dumps([m.to_dict() for m in full]).decode()
                if model.redacted_from is not None:
                    assert FAKE_KEY not in text and ENV_TOKEN not in text
            else:
                with pytest.raises(Gone):
                    self.service.share_messages(share_id)


class MemoryChains(Chains):
    kind = "memory"


class SQLiteChains(Chains):
    kind = "sqlite"


TestChainsMemory = MemoryChains.TestCase
TestChainsMemory.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
TestChainsMemory.pytestmark = [pytest.mark.slow]
TestChainsSQLite = SQLiteChains.TestCase
TestChainsSQLite.settings = settings(max_examples=75, stateful_step_count=30, deadline=None)
TestChainsSQLite.pytestmark = [pytest.mark.slow]


# any input is stored exactly or refused in one line

any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(alphabet=st.characters(codec=None), max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=40), any_json), min_size=1, max_size=4))
def test_any_input_is_stored_and_round_trips_or_refused_in_one_line(
    turns: list[tuple[str, object]],
) -> None:
    """Whatever a caller sends is either stored (and then exports and re-imports to the same
    ids) or refused with InvalidInput; it never breaks the store."""
    service = Service(MemoryStore(), MemoryBlobStore(), scanner=SecretScanner({}))
    owner = service.account("alice").id
    session = service.create(owner)
    batch = []
    for i, (text, args) in enumerate(turns):
        batch.append({"role": "user", "parts": [{"type": "text", "text": text}]})
        batch.append(
            {
                "role": "assistant",
                "parts": [{"type": "tool_call", "id": f"c{i}", "name": "tool", "input": args}],
            }
        )
    try:
        service.append(owner, session.id, batch)
    except BatonError as exc:
        assert exc.code in ("invalid_input", "too_large")
        assert "\n" not in exc.message
        assert service.get(owner, session.id).message_count == 0
        return
    stored = service.messages(owner, session.id)
    assert [m.parts for m in stored][1::2] == [
        [{"type": "tool_call", "id": f"c{i}", "name": "tool", "input": args}]
        for i, (_, args) in enumerate(turns)
    ]
    doc = service.export(owner, session.id)
    assert isinstance(doc, dict)
    other = service.account("bob").id
    imported = service.import_document(other, orjson.dumps(doc))
    assert [m.id for m in service.messages(other, imported.session.id)] == [m.id for m in stored]
    assert service.verify().ok
