"""`baton chat` (also plain `baton`) and `baton run "task"`: the agent, every turn kept in a
session."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from baton.cli.context import Context, pass_ctx
from baton.cli.forks import fork_into_mine
from baton.cli.options import (
    json_option,
    model_option,
    network_option,
    sandbox_option,
    yes_option,
)
from baton.cli.output import echo, markup, print_json, printable, safe_console
from baton.cli.setup import run_setup, setup_option, workspace_spec
from baton.cli.snapshots import capture, repository_key

HISTORY_FILE = "chat-history"
REFUSED_EXIT = 3  # `baton run`: an action the agent needed was refused

mode_option = click.option(
    "--mode",
    type=click.Choice(["ask", "auto-edit", "plan", "yolo"]),
    help="ask (the default): writes and commands are asked; auto-edit: edits are not; "
    "plan: read-only tools only; yolo: nothing is asked (as --yes).",
)


# ---------------------------------------------------------------------------------------------
# What chat and run share


def model_config(ctx: Context, model: str | None) -> Any:
    """The model to use; a one-line NoModel error (exit 2) when none is configured."""
    from baton.agent.provider import ModelConfig

    return ModelConfig.from_settings(ctx.settings, model)


def make_tools(ctx: Context, sandbox: str | None = None, network: bool = False) -> Any:
    """The tools, commands confined as the flags (--sandbox, --network) or settings say; a
    one-line warning when they run unconfined or cannot run at all."""
    from baton import sandbox as confinement
    from baton.agent.tools import COMMAND_TIMEOUT, Tools, repository_root

    settings = ctx.settings
    timeout = COMMAND_TIMEOUT if settings.command_timeout is None else settings.command_timeout
    confined = settings.sandbox if sandbox is None else sandbox == "on"
    policy = confinement.choose(confined, network or settings.network, settings.sandbox_limits)
    if not policy.confined:
        click.echo(
            "baton: warning: --sandbox off: commands run unconfined, with your files, "
            "permissions and network",
            err=True,
        )
    else:
        try:
            confinement.check()
        except confinement.SandboxUnavailable as exc:
            click.echo(f"baton: commands will be refused: {exc}", err=True)
    return Tools(repository_root(Path.cwd()), command_timeout=timeout, policy=policy)


def _capture(ctx: Context) -> dict[str, Any] | None:
    from baton.core.errors import BatonError

    try:
        return capture(ctx, None)
    except BatonError as exc:
        echo(f"baton: no git snapshot: {exc.message}", err=True)
        return None


def resnapshot(ctx: Context, session_id: str) -> None:
    """On resume: a new git snapshot when the tree differs from the session's last one (a
    killed turn may have changed files after its last snapshot, or the user did)."""
    git = _capture(ctx)
    if git is not None:
        ctx.service.snapshot(ctx.owner, session_id, git)


def new_session(ctx: Context, mode: str, model: str, task: str = "") -> Any:
    """A new session for the agent, with the state of the code when in a git repository."""
    metadata: dict[str, Any] = {
        "agent": "baton",
        "mode": mode,
        "model": model,
        "folder": folder_key(Path.cwd()),
    }
    found = _instructions()
    if found:
        metadata["instructions"] = [item.record() for item in found]
    return ctx.service.create(ctx.owner, task=task, metadata=metadata, git=_capture(ctx))


def _instructions() -> Any:
    from baton.agent import instructions
    from baton.agent.tools import repository_root

    cwd = Path.cwd()
    return instructions.find(repository_root(cwd), cwd)


def project_prompt(ctx: Context, session_id: str, root: Path) -> str:
    """The system prompt with the project's instructions (AGENTS.md, CLAUDE.md); the session
    records which files and their hashes when they changed since."""
    from baton.agent import instructions
    from baton.agent.loop import system_prompt

    found = instructions.find(root, Path.cwd())
    recorded = [item.record() for item in found]
    session = ctx.service.get(ctx.owner, session_id)
    meta = dict(session.metadata or {})
    if meta.get("instructions", []) != recorded:
        meta["instructions"] = recorded
        ctx.service.update(ctx.owner, session_id, metadata=meta)
    return instructions.prompt(system_prompt(root), found)


def folder_key(path: Path) -> str:
    """Which folder a session was started in, for `-c` outside a repository: a hash, so the
    local path is not published with a share."""
    import hashlib

    return hashlib.sha256(str(path.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:32]


def latest_here(ctx: Context) -> Any:
    """The most recent session of this repository (or, outside one, of this folder)."""
    from baton.core.errors import NotFound

    cwd = Path.cwd()
    key, root = repository_key(cwd)
    service, owner = ctx.service, ctx.owner
    candidates = service.list(owner, repo=key, limit=50).sessions if key else []
    if root is not None:
        same_root = [s for s in candidates if (s.git or {}).get("root") == root]
        if same_root or candidates:
            return (same_root or candidates)[0]
    for session in service.list(owner, limit=200).sessions:
        if root is not None and (session.git or {}).get("root") == root:
            return session
        if root is None and (session.metadata or {}).get("folder") == folder_key(cwd):
            return session
    where = f"repository {key}" if key else f"folder {cwd}"
    raise NotFound(f"no session of this {where} to continue; start one with `baton chat`")


def approver(tools: Any, mode: str, asking: bool, stderr: bool, diffs: bool = True) -> Any:
    """Who approves writes and commands: the terminal (`/dev/tty`) when `asking`, else nobody
    (refused with a one-line message unless the mode allows them). `diffs`: show each edit's
    diff even when it is not asked (not with --json)."""
    from baton.agent.approvals import Approver, read_terminal

    stream = sys.stderr if stderr else sys.stdout

    def out(text: str) -> None:
        click.echo(printable(text) if not stream.isatty() else text, err=stderr)

    reader = read_terminal if asking else None
    return Approver(tools, mode, reader, out, color=stream.isatty(), diffs=diffs)


# ---------------------------------------------------------------------------------------------
# How the turns are shown


class StreamDisplay:
    """`baton run`: the answer streams to stdout, tool activity to stderr."""

    def __init__(self, show_text: bool = True) -> None:
        self.show_text = show_text
        self._open = False
        self._last = ""

    def text(self, delta: str) -> None:
        if not self.show_text or not delta:
            return
        sys.stdout.write(printable(delta))
        sys.stdout.flush()
        self._open = True
        self._last = delta

    def reasoning(self, delta: str) -> None:
        pass

    def end_text(self) -> None:
        if self._open and not self._last.endswith("\n"):
            sys.stdout.write("\n")
            sys.stdout.flush()
        self._open = False

    def tool_call(self, name: str, args: dict[str, Any]) -> None:
        from baton.agent.slash import call_line

        if self.show_text:
            click.echo(click.style(printable(f"→ {call_line(name, args)}"), dim=True), err=True)

    def tool_result(self, name: str, outcome: Any) -> None:
        from baton.agent.slash import result_line

        if self.show_text:
            line = result_line({"output": outcome.output, "is_error": outcome.is_error})
            click.echo(click.style(printable(line), dim=True), err=True)

    def notice(self, text: str) -> None:
        self.end_text()
        echo(f"baton: {text}", err=True)


class Tail:
    """A renderable's last lines that fit the terminal (less one): a long reply streaming in
    keeps its newest lines in view. Two columns narrower than the terminal, so the `^C` the
    terminal echoes after the last line does not wrap (which would leave a stale line, e.g. a
    heading shown twice, once the live view is erased)."""

    def __init__(self, renderable: Any) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.segment import Segment

        options = options.update_width(max(options.max_width - 2, 1))
        lines = console.render_lines(self.renderable, options, pad=False)
        room = max((options.max_height or console.height) - 1, 1)
        for line in lines[-room:]:
            yield from line
            yield Segment.line()


class Busy:
    """A spinner with what is awaited and the seconds it has taken so far."""

    def __init__(self, label: str) -> None:
        from rich.spinner import Spinner

        self.label = label
        self.started = time.monotonic()
        self.spinner = Spinner("dots", style="cyan")

    def __rich__(self) -> Any:
        from rich.text import Text

        elapsed = time.monotonic() - self.started
        self.spinner.text = Text(f"{self.label} · {elapsed:.0f}s", style="dim")
        return self.spinner


class ChatDisplay:
    """`baton chat`: Markdown rendered live as it streams (its newest lines in view; the whole
    reply printed once it ends), tool calls dimmed, a spinner with the elapsed time while the
    model has not answered yet or a command runs."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self._live: Any = None
        self._busy: Any = None
        self._buffer = ""
        self._thinking = False

    def busy(self, label: str) -> None:
        """A spinner until the next output (called by the loop when it starts to wait)."""
        from rich.live import Live

        self.end_busy()
        if not self.console.is_terminal or self._live is not None:
            return
        self._busy = Live(Busy(label), console=self.console, refresh_per_second=8, transient=True)
        self._busy.start()

    def end_busy(self) -> None:
        if self._busy is not None:
            self._busy.stop()
            self._busy = None

    def text(self, delta: str) -> None:
        from rich.live import Live
        from rich.markdown import Markdown

        self.end_busy()
        self._buffer += delta
        if not self.console.is_terminal:
            return  # piped: printed whole at the end of the reply
        if self._live is None:
            self._live = Live(
                Tail(Markdown(self._buffer)),
                console=self.console,
                refresh_per_second=12,
                transient=True,  # replaced by the whole reply when it ends
            )
            self._live.start()
        else:
            self._live.update(Tail(Markdown(self._buffer)))

    def reasoning(self, delta: str) -> None:
        self.end_busy()
        if not self._thinking:
            self._thinking = True
            self.console.print("[dim italic]thinking…[/dim italic]")

    def end_text(self) -> None:
        from rich.markdown import Markdown

        self.end_busy()
        if self._live is not None:
            self._live.stop()
            self._live = None
        buffer, self._buffer = self._buffer, ""  # printed once, even if Ctrl-C cuts in again
        if buffer.strip():
            self.console.print(Markdown(buffer))
        self._thinking = False

    def tool_call(self, name: str, args: dict[str, Any]) -> None:
        from rich.markup import escape

        from baton.agent.slash import call_line

        self.end_text()
        self.console.print(f"[dim]→ {escape(call_line(name, args))}[/dim]")

    def tool_result(self, name: str, outcome: Any) -> None:
        from rich.markup import escape

        from baton.agent.slash import result_line

        self.end_busy()
        line = result_line({"output": outcome.output, "is_error": outcome.is_error})
        style = "red" if outcome.is_error else "dim"
        self.console.print(f"[{style}]{escape(line)}[/{style}]")

    def notice(self, text: str) -> None:
        from rich.markup import escape

        self.end_text()
        self.console.print(f"[yellow]{escape(text)}[/yellow]")


# ---------------------------------------------------------------------------------------------
# baton chat


class Chat:
    """The interactive loop: prompts, slash commands, one Agent per session and model."""

    def __init__(
        self,
        ctx: Context,
        config: Any,
        yes: bool,
        console: Any,
        as_json: bool = False,
        tools: Any = None,
        mode: str | None = None,
    ) -> None:
        from baton.agent.approvals import mode_of
        from baton.agent.slash import ChatState
        from baton.agent.undo import TrackedTools

        self.ctx = ctx
        self.config = config
        self.yes = yes
        self.console = console
        self.as_json = as_json  # one JSON line per turn on stdout; everything else on stderr
        tools = tools if tools is not None else make_tools(ctx)
        self.tools = TrackedTools(tools)
        self.state = ChatState(
            ctx.service,
            ctx.owner,
            console,
            model=config.model,
            ask=self._ask_yes_no,
            mode=mode_of(yes, mode),
            compact=self.compact,
            undo=self.undo,
            resumed=lambda session_id: resnapshot(ctx, session_id),
        )
        self.display: Any = StreamDisplay(show_text=False) if as_json else ChatDisplay(console)
        self.agent: Any = None
        self._approval: Any = None
        self._approval_for: str | None = None
        self.status = ""

    def _confirm(self) -> Any:
        """Asked on the terminal only: piped (or --json), stdin carries the prompts."""
        asking = not self.as_json and sys.stdin.isatty()
        json = self.as_json
        return approver(self.tools, self.state.mode, asking, stderr=json, diffs=not json)

    def _ask_yes_no(self, question: str) -> bool:
        """A question of a slash command, answered on the terminal only (never a piped line)."""
        from baton.agent.approvals import read_terminal

        answer = None
        if not self.as_json and sys.stdin.isatty():
            answer = read_terminal(click.style(f"{question} [y/N] ", fg="yellow"))
        if answer is None:
            self.console.print(f"{question} no (no terminal to ask)", highlight=False)
            return False
        return answer.strip().lower() in ("y", "yes")

    def _agent(self) -> Any:
        import dataclasses

        from baton.agent.loop import Agent
        from baton.agent.provider import Provider

        if self.state.session_id is None:
            session = new_session(self.ctx, "chat", self.state.model or self.config.model)
            self.state.session_id = session.id
        if self.state.model and self.state.model != self.config.model:
            self.config = dataclasses.replace(self.config, model=self.state.model)
            self.agent = None
        if self.agent is None or self.agent.session_id != self.state.session_id:
            self.agent = Agent(
                self.ctx.service,
                self.ctx.owner,
                self.state.session_id,
                Provider(self.config, notice=self.display.notice),
                self.tools,
                display=self.display,
                mode="chat",
                snapshot=lambda: _capture(self.ctx),
                system=project_prompt(self.ctx, self.state.session_id, self.tools.root),
            )
        if self._approval is None or self._approval_for != self.state.session_id:
            self._approval = self._confirm()  # "always" lasts as long as the session
            self._approval_for = self.state.session_id
        self._approval.mode = self.state.mode  # /mode switches from the next action on
        self.agent.confirm = self._approval
        return self.agent

    def refresh_status(self) -> None:
        sid = self.state.session_id
        if sid is None:
            self.status = f" new session · {self.state.model}"
            return
        try:
            session = self.ctx.service.get(self.ctx.owner, sid)
        except Exception:
            self.status = f" {sid} · {self.state.model}"
            return
        t = session.own  # what this session spent; a fork's inherited cost apart
        title = " ".join((session.title or "untitled").split())[:50]
        inherited = (
            f" (+${session.inherited.cost_usd:.4f} inherited)" if session.forked_from else ""
        )
        self.status = (
            f" {title} · {self.state.model} · "
            f"{t.input_tokens + t.cache_read_tokens:,} in / {t.output_tokens:,} out · "
            f"${t.cost_usd:.4f}{inherited}"
        )

    def compact(self) -> None:
        """`/compact`: the conversation so far summarised now, the summary recorded."""
        from rich.markup import escape

        from baton.agent.provider import Cancel, ModelError

        cancel = Cancel()
        try:
            with cancel.installed():
                result = self._agent().compact(cancel)
        except ModelError as exc:
            self.console.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
            return
        except KeyboardInterrupt:
            self.console.print("[yellow]interrupted: not compacted[/yellow]")
            return
        if result.compacted:
            self.console.print("compacted: earlier messages are now a summary", highlight=False)
        else:
            self.console.print("nothing to compact yet", highlight=False)

    def undo(self) -> None:
        """`/undo`: the files the last turn of the session wrote put back from what its tool
        results recorded (whichever process ran it), an `undo` message recorded and the state
        of the code snapshotted again."""
        import uuid

        from rich.markup import escape

        from baton.agent.undo import last_turn, undo_text

        sid = self.state.need_session()
        service, owner = self.ctx.service, self.ctx.owner
        forked_at = (service.get(owner, sid).forked_from or {}).get("message")
        turn = last_turn(service.messages(owner, sid), forked_at)
        if turn is not None and turn.undone:
            self.console.print("nothing to undo: the last turn was undone already", highlight=False)
            return
        if turn is not None and turn.inherited:
            self.console.print(
                "nothing to undo: the last turn came with the fork (it wrote files in another "
                "workspace)",
                highlight=False,
            )
            return
        if turn is None or not turn.files:
            self.console.print(
                "nothing to undo: the last turn of this session wrote no file", highlight=False
            )
            return
        done = self.tools.undo(service.messages(owner, sid, start=turn.start, hydrate=True))
        text = undo_text(done, turn.commands)
        part = {"type": "text", "text": f"[{text}]", "undo": done}
        self.ctx.service.append(
            self.ctx.owner,
            sid,
            [{"role": "system", "parts": [part]}],
            idempotency_key=str(uuid.uuid4()),
        )
        git = _capture(self.ctx)
        if git is not None:
            self.ctx.service.snapshot(self.ctx.owner, sid, git)
        self.console.print(escape(text), highlight=False)

    def turn(self, prompt: str) -> None:
        from rich.markup import escape

        from baton.agent.loop import Moved
        from baton.agent.mentions import attach
        from baton.agent.provider import Cancel, ModelError
        from baton.core.errors import InvalidInput

        try:
            attachments = attach(prompt, self.tools)
        except InvalidInput as exc:
            self.console.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
            if self.as_json:
                import orjson

                refused = {"session_id": self.state.session_id, "error": exc.message}
                sys.stdout.buffer.write(orjson.dumps(refused) + b"\n")
                sys.stdout.flush()
            return
        agent = self._agent()
        cancel = Cancel()
        error = None
        result = None
        self.tools.start_turn()
        try:
            with cancel.installed():
                result = agent.turn(prompt, cancel, attachments)
        except (ModelError, Moved) as exc:
            self.display.end_text()
            error = exc.message
            self.console.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
        except KeyboardInterrupt:  # between turns' steps, before anything was asked
            self.display.end_text()
            self.console.print("[yellow]interrupted[/yellow]")
        finally:
            self.display.end_text()
        if self.as_json:
            line: dict[str, Any] = {"session_id": self.state.session_id, "error": error}
            if result is not None:
                line.update(
                    answer=result.answer,
                    usage={k: v for k, v in result.usage.items() if k != "cost_usd"},
                    cost_usd=result.usage["cost_usd"],
                    turns=result.steps,
                    interrupted=result.interrupted,
                    files_written=result.written,
                )
            import orjson

            sys.stdout.buffer.write(orjson.dumps(line) + b"\n")
            sys.stdout.flush()

    def line(self, text: str) -> bool:
        """One input line: a slash command or a prompt. False: leave."""
        from baton.agent.slash import handle

        if not text.strip():
            return True
        if text.lstrip().startswith("/"):
            keep = handle(text, self.state)
        else:
            self.turn(text)
            keep = True
        self.refresh_status()
        return keep

    def run(self) -> None:
        if self.as_json or not sys.stdin.isatty():
            for text in sys.stdin:
                if not self.line(text.rstrip("\n")):
                    break
            return
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory

        home = self.ctx.settings.home
        home.mkdir(parents=True, exist_ok=True)
        prompt: Any = PromptSession(
            history=FileHistory(str(home / HISTORY_FILE)),
            completer=_slash_completer(self.tools.root),
            bottom_toolbar=lambda: self.status,
            complete_while_typing=True,
            key_bindings=_newline_keys(),
        )
        self.refresh_status()
        self.console.print(
            "[dim]baton chat: /help for commands, @path attaches a file, Alt-Enter for a new "
            "line, Ctrl-C stops a turn, Ctrl-D leaves[/dim]"
        )
        while True:
            try:
                text = prompt.prompt("› ")
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            if not self.line(text):
                break
        if self.state.session_id:
            self.console.print(f"[dim]session {self.state.session_id}[/dim]")


# Shift-Enter as the terminals that tell it apart send it (the CSI u form of kitty, foot,
# WezTerm, iTerm2; xterm's modifyOtherKeys form): the same as Alt-Enter. Most terminals send
# a plain Enter for it, so the hint names Alt-Enter, which works everywhere.
SHIFT_ENTER = ("\x1b[13;2u", "\x1b[27;2;13~")


def _newline_keys() -> Any:
    """Alt-Enter (Esc, Enter) inserts a new line; Enter sends the prompt."""
    from prompt_toolkit.input.ansi_escape_sequences import ANSI_SEQUENCES
    from prompt_toolkit.key_binding import KeyBindings
    from prompt_toolkit.keys import Keys

    for sequence in SHIFT_ENTER:
        ANSI_SEQUENCES.setdefault(sequence, (Keys.Escape, Keys.ControlM))
    keys = KeyBindings()

    @keys.add("escape", "enter")
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    return keys


def _slash_completer(root: Path) -> Any:
    from prompt_toolkit.completion import Completer, Completion

    from baton.agent.mentions import complete
    from baton.agent.slash import completions

    class SlashCompleter(Completer):
        def get_completions(self, document: Any, complete_event: Any) -> Any:
            text = document.text_before_cursor
            word = text.split()[-1] if text and not text[-1].isspace() else ""
            if word.startswith("@"):
                for option in complete(word[1:], root):
                    yield Completion("@" + option, start_position=-len(word))
                return
            for option in completions(text):
                yield Completion(option, start_position=-len(text))

    return SlashCompleter()


def chat_console(stderr: bool = False) -> Any:
    """On a terminal, the width follows the window (a COLUMNS a shell exported at start-up
    would pin it); piped, as every command prints. With --json, on stderr."""

    stream = sys.stderr if stderr else sys.stdout
    if not stream.isatty():
        width = int(os.environ.get("COLUMNS") or 160)
        return safe_console(highlight=False, soft_wrap=False, width=width, stderr=stderr)
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return safe_console(highlight=False, stderr=stderr, _environ=environ)


@click.command("chat")
@click.option(
    "-c", "--continue", "cont", is_flag=True, help="Resume the latest session of this repository."
)
@click.option("-s", "--session", "session_id", help="Resume this session.")
@click.option("--fork", "fork_source", metavar="SHARE_ID", help="Fork a share and continue there.")
@model_option
@yes_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Read prompts from stdin, one per line, and print one JSON line per turn.",
)
@sandbox_option
@network_option
@setup_option
@mode_option
@pass_ctx
def chat(
    ctx: Context,
    cont: bool,
    session_id: str | None,
    fork_source: str | None,
    model: str | None,
    yes: bool,
    as_json: bool = False,
    sandbox: str | None = None,
    network: bool = False,
    setup_flags: tuple[str, ...] = (),
    mode: str | None = None,
) -> None:
    """Talk to the coding agent; every turn is kept in a session. Slash commands: /help.
    With stdin not a terminal, each line is a prompt or a slash command.

    \b
    Examples:
      baton chat
      baton chat -c
      baton chat --fork 3q2-7wEr9aTz_Rk1mC0x4Ab --model gpt-4.1
      printf 'fix the tests\\n/session share\\n' | baton chat --yes --json
    """
    from baton.agent.slash import SHOWN_TURNS, show_history

    if sum(bool(x) for x in (cont, session_id, fork_source)) > 1:
        raise click.UsageError("give at most one of -c, -s and --fork")
    tools = make_tools(ctx, sandbox, network)
    resumed = None
    if fork_source is not None:
        resumed = fork_into_mine(ctx, fork_source)
        click.echo(f"forked into {resumed.id}", err=True)
    config = model_config(ctx, model)
    if cont:
        resumed = latest_here(ctx)
    elif session_id is not None:
        resumed = ctx.service.get(ctx.owner, session_id)
    out = chat_console(stderr=as_json)
    session = Chat(ctx, config, yes, out, as_json, tools, mode)
    spec = workspace_spec(ctx, tools.root, setup_flags) if resumed is None else None
    if spec is not None and spec.commands:  # a new workspace: set up before the first turn
        session.state.session_id = new_session(ctx, "chat", config.model).id
        run_setup(ctx, session.state.session_id, tools.root, sandbox=sandbox, spec=spec)
    if resumed is not None:
        resnapshot(ctx, resumed.id)
        session.state.session_id = resumed.id
        out.print(
            f"[bold]{markup(resumed.title or '(untitled)')}[/bold] [dim]{resumed.id}[/dim]",
            highlight=False,
        )
        show_history(out, ctx.service.messages(ctx.owner, resumed.id), SHOWN_TURNS)
    session.run()


CONFIGURE_MODEL = """\
The coding agent (`baton chat`, also plain `baton`) needs a model; none is configured.
Configure one, for example:
  export BATON_MODEL=gpt-4.1 OPENAI_API_KEY=sk-...          # OpenAI
  export BATON_MODEL=NAME BATON_BASE_URL=URL BATON_API_KEY=KEY  # any OpenAI-compatible endpoint
  export BATON_MODEL=qwen3 BATON_BASE_URL=http://localhost:11434/v1  # a local server, no key
or put model, base_url and api_key in {config}, or pass --model to `baton chat`."""


def chat_or_help(click_ctx: click.Context) -> None:
    """Plain `baton`: the chat; with no model configured, the help and how to configure one
    (exit 0), since nothing went wrong yet."""
    from baton.config import CONFIG_FILE

    ctx: Context = click_ctx.obj
    if ctx.settings.model:
        click_ctx.invoke(chat)
        return
    click.echo(click_ctx.get_help())
    click.echo("")
    click.echo(CONFIGURE_MODEL.format(config=ctx.settings.home / CONFIG_FILE))


# ---------------------------------------------------------------------------------------------
# baton run


@click.command("run")
@click.argument("task")
@click.option("-s", "--session", "session_id", help="Continue this session instead of a new one.")
@model_option
@yes_option
@sandbox_option
@network_option
@setup_option
@mode_option
@json_option
@pass_ctx
def run(
    ctx: Context,
    task: str,
    session_id: str | None,
    model: str | None,
    yes: bool,
    sandbox: str | None,
    network: bool,
    as_json: bool,
    setup_flags: tuple[str, ...] = (),
    mode: str | None = None,
) -> None:
    """Run the agent on one task without a terminal UI, for scripts and CI. Without --yes,
    writing and running are asked on a terminal and refused without one; a refused action
    makes the exit code 3. With --json, an error is one JSON object on stdout too.

    \b
    Examples:
      baton run "add a test for the login form" --yes
      baton run "why does CI fail?" --json
    """
    from baton.core.errors import BatonError

    try:
        _run(ctx, task, session_id, model, yes, sandbox, network, as_json, mode, setup_flags)
    except BatonError as exc:
        if not as_json:
            raise
        print_json({"error": {"code": exc.code, "message": exc.message}})
        raise SystemExit(exc.exit_code) from None


def _run(
    ctx: Context,
    task: str,
    session_id: str | None,
    model: str | None,
    yes: bool,
    sandbox: str | None,
    network: bool,
    as_json: bool,
    mode: str | None,
    setup_flags: tuple[str, ...] = (),
) -> None:
    from baton.agent.approvals import mode_of
    from baton.agent.loop import Agent
    from baton.agent.provider import Cancel, ModelError, Provider

    config = model_config(ctx, model)
    tools = make_tools(ctx, sandbox, network)
    if session_id is not None:
        session = ctx.service.get(ctx.owner, session_id)
        resnapshot(ctx, session.id)
    else:
        spec = workspace_spec(ctx, tools.root, setup_flags)  # checked before the session
        session = new_session(ctx, "run", config.model, task=task)
        run_setup(ctx, session.id, tools.root, sandbox=sandbox, spec=spec)
    display = StreamDisplay(show_text=not as_json)
    asking = sys.stdin.isatty()
    confirm = approver(tools, mode_of(yes, mode), asking, stderr=True, diffs=not as_json)
    agent = Agent(
        ctx.service,
        ctx.owner,
        session.id,
        Provider(config, notice=display.notice),
        tools,
        display=display,
        confirm=confirm,
        mode="run",
        snapshot=lambda: _capture(ctx),
        system=project_prompt(ctx, session.id, tools.root),
    )
    cancel = Cancel()
    try:
        with cancel.installed():
            result = agent.turn(task, cancel)
    except ModelError as exc:
        raise ModelError(f"{exc.message} (session {session.id} keeps the turn)") from None
    stored = ctx.service.get(ctx.owner, session.id)
    if as_json:
        print_json(
            {
                "session_id": session.id,
                "answer": result.answer,
                "usage": {k: v for k, v in result.usage.items() if k != "cost_usd"},
                "cost_usd": result.usage["cost_usd"],
                "turns": result.steps,
                "interrupted": result.interrupted,
                "files_read": result.read,
                "files_written": result.written,
                "refused": confirm.refused,
                "session_totals": stored.totals.to_dict(),  # the whole chain's
                "session_own": stored.own.to_dict(),  # what this session itself spent
                "session_inherited": stored.inherited.to_dict(),  # a fork's, at the fork
            }
        )
    else:
        u = result.usage
        click.echo(
            f"session {session.id} · {u['input_tokens'] + u['cache_read_tokens']:,} in / "
            f"{u['output_tokens']:,} out tokens · ${u['cost_usd']:.4f}",
            err=True,
        )
    if result.interrupted:
        raise SystemExit(130)
    if confirm.refused:
        if not as_json:
            click.echo(
                f"baton: {len(confirm.refused)} action(s) refused; exit code {REFUSED_EXIT}",
                err=True,
            )
        raise SystemExit(REFUSED_EXIT)


# ---------------------------------------------------------------------------------------------
# baton setup


@click.command("setup")
@click.argument("session_id", required=False)
@setup_option
@sandbox_option
@json_option
@pass_ctx
def setup_command(
    ctx: Context,
    session_id: str | None,
    setup_flags: tuple[str, ...],
    sandbox: str | None,
    as_json: bool,
) -> None:
    """Run the setup commands again in this repository, recorded in a session (default: the
    latest of this repository). They come from --setup, .baton/setup.toml, the [setup] table
    of .baton/config.toml, or `setup` in the config file. Exit code 3 when one fails.

    \b
    Examples:
      baton setup
      baton setup ses_01J... --setup "npm ci"
    """
    from baton.agent.tools import repository_root

    session = latest_here(ctx) if session_id is None else ctx.service.get(ctx.owner, session_id)
    root = repository_root(Path.cwd())
    spec = workspace_spec(ctx, root, setup_flags)
    if not spec.commands:
        from baton.core.errors import InvalidInput

        raise InvalidInput(
            "no setup commands: declare them in .baton/setup.toml, the config file's "
            "`setup`, or give --setup CMD"
        )
    results = run_setup(ctx, session.id, root, sandbox=sandbox, spec=spec)
    if as_json:
        print_json(
            {
                "session_id": session.id,
                "setup": [r.message()["parts"][0]["setup"] for r in results],
            }
        )
    else:
        click.echo(f"setup done: {len(results)} command(s) recorded in session {session.id}")


COMMANDS = [chat, run, setup_command]
