"""The chat's status line counts what the session itself spent; a fork's inherited cost is
shown apart (a fork of a $0.00096 session once showed $0.0010 before its first prompt)."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from baton.cli.chat import Chat
from baton.cli.context import Context
from tests.helpers import text_message


def test_the_chat_status_line_shows_own_cost_and_inherited_apart(tmp_path: Path) -> None:
    ctx = Context(str(tmp_path / "home"))
    service, owner = ctx.service, ctx.owner
    session = service.create(owner, title="Costly")
    reply = {"input_tokens": 900, "output_tokens": 12, "cost_usd": 0.00096}
    service.append(
        owner, session.id, [text_message("user", "q"), text_message("assistant", "a", usage=reply)]
    )
    fork = service.fork(owner, session.id)
    chat = Chat(ctx, SimpleNamespace(model="m1"), True, Console(file=io.StringIO()), tools=[])
    chat.state.session_id = session.id
    chat.refresh_status()
    assert chat.status == " Costly · m1 · 900 in / 12 out · $0.0010"
    chat.state.session_id = fork.id
    chat.refresh_status()
    assert chat.status == " Costly · m1 · 0 in / 0 out · $0.0000 (+$0.0010 inherited)"
    more = {"input_tokens": 1000, "output_tokens": 3, "cost_usd": 0.002}
    service.append(owner, fork.id, [text_message("assistant", "b", usage=more)])
    chat.refresh_status()
    assert chat.status == " Costly · m1 · 1,000 in / 3 out · $0.0020 (+$0.0010 inherited)"
    ctx.local.store.close()


def test_the_cost_and_session_show_commands_keep_a_forks_inheritance_apart(
    tmp_path: Path,
) -> None:
    from baton.agent.slash import ChatState, handle

    ctx = Context(str(tmp_path / "home"))
    service, owner = ctx.service, ctx.owner
    session = service.create(owner, title="Costly")
    reply = {"input_tokens": 900, "output_tokens": 12, "cost_usd": 0.00096}
    service.append(
        owner, session.id, [text_message("user", "q"), text_message("assistant", "a", usage=reply)]
    )
    fork = service.fork(owner, session.id)
    out = io.StringIO()
    state = ChatState(service, owner, Console(file=out, width=200), session_id=fork.id)
    assert handle("/cost", state) and handle("/session show", state)
    lines = out.getvalue().splitlines()
    assert lines[0] == (
        f"{fork.id}: 0 input + 0 cached input, 0 output tokens, $0.0000 "
        "(inherited: 900 in / 12 out, $0.0010)"
    )
    assert lines[2] == "2 messages · 0 in / 0 out tokens · $0.0000 (+$0.0010 inherited)"
    ctx.local.store.close()
