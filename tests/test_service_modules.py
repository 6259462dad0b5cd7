"""The service as a package of use cases: what the restructuring added or made single
(issue 13): sharing reads once, the owner's account is validated as any account, and the
lookups the CLI used to do on the store itself."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from baton.core.errors import InvalidInput
from baton.service import Service
from tests.helpers import text_message, tool_turn

FAKE_KEY = "sk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5xY7w"


def test_a_redacted_share_reads_the_flagged_messages_and_each_payload_once(
    service: Service, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = service.create(owner, task="fix login")
    service.append(owner, session.id, [text_message("user", "read the config")])
    service.append(owner, session.id, tool_turn("c1", "cat", {}, f"{'x' * 70_000} {FAKE_KEY}"))
    service.append(owner, session.id, [text_message("assistant", "done")])
    shas = {
        part["sha256"]
        for m in service.messages(owner, session.id)
        for part in m.parts
        if part.get("type") == "blob_ref"
    }
    assert len(shas) == 1  # the tool output, offloaded
    flagged_reads: list[str] = []
    blob_reads: Counter[str] = Counter()
    flagged, get = service.store.flagged, service.blobs.get

    def counted_flagged(head: str) -> Any:
        flagged_reads.append(head)
        return flagged(head)

    def counted_get(sha: str) -> bytes | None:
        blob_reads[sha] += 1
        return get(sha)

    monkeypatch.setattr(service.store, "flagged", counted_flagged)
    monkeypatch.setattr(service.blobs, "get", counted_get)
    head = service.get(owner, session.id).head
    share = service.share(owner, session.id, mode="redact")
    assert flagged_reads == [head]
    assert blob_reads == Counter({next(iter(shas)): 1})
    monkeypatch.undo()
    assert [f["kind"] for f in share.redacted] == ["OpenAI Token"]
    published = service.share_messages(share.id, hydrate=True)
    assert len(published) == 4 and FAKE_KEY not in str([m.parts for m in published])


def test_the_owners_account_is_added_by_the_rules_of_every_account(service: Service) -> None:
    with pytest.raises(InvalidInput) as bad:
        service.account("Not A Handle")
    assert bad.value.message == (
        "handle 'Not A Handle' must be 1-39 lowercase letters, digits, '-' or '_'"
    )
    with pytest.raises(InvalidInput) as shown:
        service.account("eve", "Eve \x1b[31mred")
    assert "holds control or bidi characters" in shown.value.message
    assert service.accounts.list_all() == []  # nothing was added
    eve = service.account("eve", "Eve")
    assert service.account("eve", "Someone Else") == eve


def test_imported_from_finds_my_session_imported_from_a_source_session(
    service: Service, owner: str, other: str
) -> None:
    source = {"source": {"tool": "codex", "session_id": "rollout-1"}}
    mine = service.create(owner, metadata=source)
    service.create(other, metadata=source)
    service.create(owner, metadata={"source": {"tool": "codex", "session_id": "rollout-2"}})
    found = service.imported_from(owner, "rollout-1")
    assert found is not None and found.id == mine.id
    assert service.imported_from(owner, "rollout-3") is None


def test_share_exists_for_every_share_of_this_store_live_or_not(
    service: Service, owner: str
) -> None:
    session = service.create(owner)
    service.append(owner, session.id, [text_message("user", "hello")])
    share = service.share(owner, session.id)
    assert service.share_exists(share.id)
    service.revoke(owner, share.id)
    assert service.share_exists(share.id)
    assert not service.share_exists("shr_unknown")


@pytest.mark.parametrize(
    ("login", "handle"),
    [("Ada.Lovelace", "adalovelace"), ("_apt", "apt"), ("-", "me"), ("x" * 50, "x" * 39)],
)
def test_the_local_handle_from_the_login_name_is_a_valid_handle(
    service: Service, monkeypatch: pytest.MonkeyPatch, login: str, handle: str
) -> None:
    """Local mode's owner is added through Accounts.add, so the handle made from the login
    name must pass its rule."""
    from baton import config

    monkeypatch.setattr(config.getpass, "getuser", lambda: login)
    settings = config.Settings.load()
    assert settings.user == handle
    assert service.account(settings.user).handle == handle
