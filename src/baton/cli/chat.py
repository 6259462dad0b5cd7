"""`baton chat` (also plain `baton`) and `baton run "task"`: the agent, every turn kept in a
session."""

from __future__ import annotations

import os
import subprocess
import sys
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
from baton.cli.snapshots import capture

HISTORY_FILE = "chat-history"


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


def new_session(ctx: Context, mode: str, model: str, task: str = "") -> Any:
    """A new session for the agent, with the state of the code when in a git repository."""
    metadata = {"agent": "baton", "mode": mode, "model": model, "folder": folder_key(Path.cwd())}
    return ctx.service.create(ctx.owner, task=task, metadata=metadata, git=_capture(ctx))


def folder_key(path: Path) -> str:
    """Which folder a session was started in, for `-c` outside a repository: a hash, so the
    local path is not published with a share."""
    import hashlib

    return hashlib.sha256(str(path.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def repository_key(cwd: Path) -> tuple[str | None, str | None]:
    """(the repo key sessions are listed by, the work tree root) of `cwd`, as a capture
    records them: the normalised remote URL, else the root commit."""
    from baton import gitstate

    root = _git(cwd, "rev-parse", "--show-toplevel")
    if root is None:
        return None, None
    remote_name = None
    upstream = _git(cwd, "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}")
    remotes = (_git(cwd, "remote") or "").split()
    if upstream and "/" in upstream and upstream.split("/", 1)[0] in remotes:
        remote_name = upstream.split("/", 1)[0]
    elif remotes:
        remote_name = "origin" if "origin" in remotes else remotes[0]
    url = _git(cwd, "config", "--get", f"remote.{remote_name}.url") if remote_name else None
    if url:
        if "://" not in url and gitstate.scp_like(url) is None:
            url = os.path.normpath(Path(root) / url)
        return gitstate.normalize_remote(url), root
    roots = (_git(cwd, "rev-list", "--max-parents=0", "HEAD") or "").split()
    return (roots[-1] if roots else None), root


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


def _confirm_on_terminal(stream: Any) -> Any:
    """Ask before writing or running: [y]es, [n]o, [a]lways (for this tool, this chat)."""
    always: set[str] = set()

    def confirm(name: str, args: dict[str, Any], description: str) -> bool:
        if name in always:
            return True
        while True:
            click.echo(
                click.style(f"allow {description}? [y/n/a] ", fg="yellow"), nl=False, err=stream
            )
            answer = sys.stdin.readline()
            if not answer:
                return False
            answer = answer.strip().lower()
            if answer in ("y", "yes"):
                return True
            if answer in ("a", "always"):
                always.add(name)
                return True
            if answer in ("n", "no", ""):
                return False

    return confirm


def _refuse_without_terminal(name: str, args: dict[str, Any], description: str) -> bool:
    click.echo(f"baton: refused {description} (no terminal to ask; pass --yes to allow)", err=True)
    return False


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


class ChatDisplay:
    """`baton chat`: Markdown rendered live as it streams, tool calls dimmed."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self._live: Any = None
        self._buffer = ""
        self._thinking = False

    def text(self, delta: str) -> None:
        from rich.live import Live
        from rich.markdown import Markdown

        self._buffer += delta
        if not self.console.is_terminal:
            return  # piped: printed whole at the end of the reply
        if self._live is None:
            self._live = Live(
                Markdown(self._buffer),
                console=self.console,
                refresh_per_second=12,
                vertical_overflow="ellipsis",
            )
            self._live.start()
        else:
            self._live.update(Markdown(self._buffer))

    def reasoning(self, delta: str) -> None:
        if not self._thinking:
            self._thinking = True
            self.console.print("[dim italic]thinking…[/dim italic]")

    def end_text(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        elif self._buffer.strip():
            from rich.markdown import Markdown

            self.console.print(Markdown(self._buffer))
        self._buffer = ""
        self._thinking = False

    def tool_call(self, name: str, args: dict[str, Any]) -> None:
        from rich.markup import escape

        from baton.agent.slash import call_line

        self.end_text()
        self.console.print(f"[dim]→ {escape(call_line(name, args))}[/dim]")

    def tool_result(self, name: str, outcome: Any) -> None:
        from rich.markup import escape

        from baton.agent.slash import result_line

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
    ) -> None:
        from baton.agent.slash import ChatState

        self.ctx = ctx
        self.config = config
        self.yes = yes
        self.console = console
        self.as_json = as_json  # one JSON line per turn on stdout; everything else on stderr
        self.tools = tools if tools is not None else make_tools(ctx)
        self.state = ChatState(
            ctx.service, ctx.owner, console, model=config.model, ask=self._ask_yes_no
        )
        self.display: Any = StreamDisplay(show_text=False) if as_json else ChatDisplay(console)
        self.agent: Any = None
        self.status = ""

    def _confirm(self) -> Any:
        if self.yes:
            return None
        if self.as_json:  # stdin carries the prompts: nobody to ask
            return _refuse_without_terminal
        return _confirm_on_terminal(False)

    def _ask_yes_no(self, question: str) -> bool:
        self.console.print(f"[yellow]{question} [y/N][/yellow] ", end="")
        answer = sys.stdin.readline().strip().lower()
        return answer in ("y", "yes")

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
                confirm=self._confirm(),
                mode="chat",
                snapshot=lambda: _capture(self.ctx),
            )
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

    def turn(self, prompt: str) -> None:
        from rich.markup import escape

        from baton.agent.provider import Cancel, ModelError

        agent = self._agent()
        cancel = Cancel()
        error = None
        result = None
        try:
            with cancel.installed():
                result = agent.turn(prompt, cancel)
        except ModelError as exc:
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
            completer=_slash_completer(),
            bottom_toolbar=lambda: self.status,
            complete_while_typing=True,
        )
        self.refresh_status()
        self.console.print(
            "[dim]baton chat: /help for commands, Ctrl-C stops a turn, Ctrl-D leaves[/dim]"
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


def _slash_completer() -> Any:
    from prompt_toolkit.completion import Completer, Completion

    from baton.agent.slash import completions

    class SlashCompleter(Completer):
        def get_completions(self, document: Any, complete_event: Any) -> Any:
            text = document.text_before_cursor
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
    session = Chat(ctx, config, yes, out, as_json, tools)
    if resumed is not None:
        session.state.session_id = resumed.id
        out.print(
            f"[bold]{markup(resumed.title or '(untitled)')}[/bold] [dim]{resumed.id}[/dim]",
            highlight=False,
        )
        show_history(out, ctx.service.messages(ctx.owner, resumed.id), SHOWN_TURNS)
    session.run()


# ---------------------------------------------------------------------------------------------
# baton run


@click.command("run")
@click.argument("task")
@click.option("-s", "--session", "session_id", help="Continue this session instead of a new one.")
@model_option
@yes_option
@sandbox_option
@network_option
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
) -> None:
    """Run the agent on one task without a terminal UI, for scripts and CI. Without --yes,
    writing and running are asked on a terminal and refused without one.

    \b
    Examples:
      baton run "add a test for the login form" --yes
      baton run "why does CI fail?" --json
    """
    from baton.agent.loop import Agent
    from baton.agent.provider import Cancel, ModelError, Provider

    config = model_config(ctx, model)
    tools = make_tools(ctx, sandbox, network)
    if session_id is not None:
        session = ctx.service.get(ctx.owner, session_id)
    else:
        session = new_session(ctx, "run", config.model, task=task)
    display = StreamDisplay(show_text=not as_json)
    if yes:
        confirm = None
    elif sys.stdin.isatty():
        confirm = _confirm_on_terminal(True)
    else:
        confirm = _refuse_without_terminal
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
    )
    cancel = Cancel()
    try:
        with cancel.installed():
            result = agent.turn(task, cancel)
    except ModelError as exc:
        raise ModelError(f"{exc.message} (session {session.id} keeps the turn)") from None
    totals = ctx.service.get(ctx.owner, session.id).totals
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
                "session_totals": totals.to_dict(),
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


COMMANDS = [chat, run]
