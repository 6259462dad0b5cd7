"""`baton cloud …`: runs of the agent on the server (issue 15): start one on a repository,
list them, read (and follow) a run's session, stop one; and the repositories and environments
runs use. Logged in (`baton login`), against that server; otherwise against the local store,
whose runs `baton serve` executes."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import click

from baton.cli.context import Context, pass_ctx
from baton.cli.options import json_option
from baton.cli.output import console, echo, markup, part_summary, plain, print_json, short_time

POLL_SECONDS = 1.0  # how often --follow asks for new messages and the run's state


def _line(value: Any) -> None:
    """One JSON line (what --follow --json prints, one per event)."""
    import orjson

    data = orjson.dumps(value)
    if not data.isascii():  # C1 and bidi controls are left raw by JSON: escape them
        from baton.core.terminal import json_printable

        data = json_printable(data.decode()).encode()
    sys.stdout.buffer.write(data + b"\n")
    sys.stdout.flush()


def _cloud(ctx: Context) -> Any:
    """The Cloud contract of this CLI's service (the local Service or the Client)."""
    return ctx.service


@click.group("cloud")
def cloud() -> None:
    """Runs of the agent on the server: start, watch, stop; repositories and environments.

    \b
    Examples:
      baton cloud repos add https://github.com/team/widgets.git
      baton cloud envs add ci --setup "pip install -e ." --secret API_KEY
      baton cloud start --repo widgets --env ci "Fix the flaky test" --follow
    """


# runs


def _run_row(run: Any) -> list[str]:
    return [
        run.id,
        run.session_id,
        run.state + (" (stopping)" if run.cancel_requested and run.active else ""),
        markup(plain(run.prompt, 50)),
        short_time(run.created_at),
    ]


def _runs_table(runs: list[Any]) -> Any:
    from rich.table import Table

    table = Table(pad_edge=False)
    for name in ("Run ID", "Session", "State", "Task", "Created"):
        table.add_column(name, no_wrap=name != "Task", style="cyan" if name == "Run ID" else None)
    for run in runs:
        table.add_row(*_run_row(run))
    return table


@cloud.command("start")
@click.argument("task")
@click.option("--repo", "repo", help="The repository (id or name; see `baton cloud repos`).")
@click.option("--branch", help="The branch to start from (default: the repository's).")
@click.option("--env", "environment", help="The environment (id or name).")
@click.option("--model", help="The model (default: the environment's, else the server's).")
@click.option(
    "-s",
    "--session",
    "session_id",
    help="Continue this session (its repository, branch and environment unless given).",
)
@click.option("--follow", is_flag=True, help="Then print the session's messages until it ends.")
@json_option
@pass_ctx
def start(
    ctx: Context,
    task: str,
    repo: str | None,
    branch: str | None,
    environment: str | None,
    model: str | None,
    session_id: str | None,
    follow: bool,
    as_json: bool,
) -> None:
    """Queue a run of the agent on TASK in a new session on a repository (or, with
    --session, the next run of that session).

    Example: baton cloud start --repo widgets --env ci "Fix the flaky test" --follow
    """
    run, session = _cloud(ctx).start_run(
        ctx.owner,
        task,
        repo=repo,
        branch=branch,
        environment=environment,
        model=model,
        session_id=session_id,
    )
    if as_json and not follow:
        print_json({"run": run.to_dict(), "session": session.to_dict()})
        return
    if as_json:
        _line({"run": run.to_dict(), "session": session.to_dict()})
    else:
        click.echo(f"{run.id} queued on session {session.id}")
        if not follow:
            click.echo(f"  follow it: baton cloud logs {run.id} --follow", err=True)
            click.echo(f"  stop it:   baton cloud stop {run.id}", err=True)
            return
    _follow(ctx, run, 0, as_json)


@cloud.command("list")
@click.option("-s", "--session", "session_id", help="Only the runs of this session.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@json_option
@pass_ctx
def list_runs(ctx: Context, session_id: str | None, limit: int, as_json: bool) -> None:
    """My runs, newest first.

    Example: baton cloud list --session ses_01J...
    """
    runs = _cloud(ctx).runs(ctx.owner, session_id=session_id, limit=limit)
    if as_json:
        print_json([r.to_dict() for r in runs])
    elif not runs:
        click.echo("no runs")
    else:
        console().print(_runs_table(runs))


def _resolve(ctx: Context, key: str) -> tuple[Any, str]:
    """A run id, or a session id (its latest run, None if it has none) -> (run, session)."""
    from baton.core.errors import InvalidInput, NotFound

    service = _cloud(ctx)
    if key.startswith("run_"):
        run = service.run(ctx.owner, key)
        return run, run.session_id
    if key.startswith("ses_"):
        runs = service.runs(ctx.owner, session_id=key, limit=1)
        if not runs:
            ctx.service.get(ctx.owner, key)  # a session of mine without runs, or 404
            raise NotFound(f"session {key} has no server runs")
        return runs[0], key
    raise InvalidInput(f"{key!r} is neither a run id (run_…) nor a session id (ses_…)")


def _print_message(position: int, message: Any) -> None:
    out = console()
    label = message.role + (f" · {message.model}" if message.model else "")
    out.print(
        f"\n[bold]#{position} {markup(label)}[/bold] [dim]{short_time(message.created_at)}[/dim]"
    )
    for part in message.parts:
        out.print(part_summary(part), markup=False)


def _emit(position: int, message: Any, as_json: bool) -> None:
    if as_json:
        _line({"position": position, "message": message.to_dict()})
    else:
        _print_message(position, message)


def _follow(ctx: Context, run: Any, start: int, as_json: bool) -> None:
    """Print the session's messages from `start` as they come, and the run's changes of
    state, until it ends; exit 1 unless it ended done. Against a server, from the session's
    live events; in local mode (the store `baton serve` executes from), by polling it."""
    service = _cloud(ctx)
    from baton.client import Client

    if isinstance(service, Client):
        _follow_events(ctx, service, run, start, as_json)
        return
    position, state = start, None
    while True:
        current = service.run(ctx.owner, run.id)
        for message in service.messages(ctx.owner, run.session_id, start=position):
            position += 1
            _emit(position, message, as_json)
        if current.state != state:
            state = current.state
            if as_json:
                _line({"run": current.to_dict()})
            else:
                echo(f"-- {current.id} {state}" + (f": {current.error}" if current.error else ""))
        if not current.active:
            # what was appended before it ended has been read: the last read came after
            for message in service.messages(ctx.owner, run.session_id, start=position):
                position += 1
                _emit(position, message, as_json)
            if current.state != "done":
                raise SystemExit(1)
            return
        time.sleep(POLL_SECONDS)


def _follow_events(ctx: Context, client: Any, run: Any, start: int, as_json: bool) -> None:
    """`_follow` over the server's Server-Sent Events of the run's session: each message as
    it is recorded, each change of the run's state (the client reconnects by itself, from
    the last message it received)."""
    from baton.client import message_from

    position, state, error = start, None, None
    current = client.run(ctx.owner, run.id)
    if current.active:
        for event in client.events(run.session_id, after=start):
            if event.event == "message" and event.id is not None and event.id > position:
                position = event.id
                _emit(position, message_from(event.data["message"]), as_json)
            elif event.event == "run" and event.data.get("id") == run.id:
                if event.data["state"] != state:
                    state, error = event.data["state"], event.data.get("error")
                    if as_json:
                        _line({"run": event.data})
                    else:
                        echo(f"-- {run.id} {state}" + (f": {error}" if error else ""))
                if not event.data.get("active", True):
                    break
        current = client.run(ctx.owner, run.id)
    # what was recorded before it ended (all of it, when it had ended already)
    for message in client.messages(ctx.owner, run.session_id, start=position):
        position += 1
        _emit(position, message, as_json)
    if current.state != state:
        if as_json:
            _line({"run": current.to_dict()})
        else:
            echo(
                f"-- {current.id} {current.state}" + (f": {current.error}" if current.error else "")
            )
    if current.state != "done":
        raise SystemExit(1)


@cloud.command("logs")
@click.argument("run_or_session")
@click.option("--follow", is_flag=True, help="Keep printing until the run ends.")
@json_option
@pass_ctx
def logs(ctx: Context, run_or_session: str, follow: bool, as_json: bool) -> None:
    """The messages of a run's session (setup output, the agent's work), given a run id or a
    session id; with --follow, as they are recorded until the run ends (exit 1 unless it
    ended done). With --json --follow: JSON lines ({"position", "message"} and {"run"}).

    Example: baton cloud logs run_01J... --follow
    """
    run, session_id = _resolve(ctx, run_or_session)
    if follow:
        _follow(ctx, run, 0, as_json)
        return
    messages = ctx.service.messages(ctx.owner, session_id)
    if as_json:
        print_json({"run": run.to_dict(), "messages": [m.to_dict() for m in messages]})
        return
    for position, message in enumerate(messages, 1):
        _print_message(position, message)
    echo(f"-- {run.id} {run.state}" + (f": {run.error}" if run.error else ""))


@cloud.command("stop")
@click.argument("run_or_session")
@json_option
@pass_ctx
def stop(ctx: Context, run_or_session: str, as_json: bool) -> None:
    """Stop a run (given its id, or its session's): a queued one at once, a working one
    within seconds.

    Example: baton cloud stop run_01J...
    """
    run, _ = _resolve(ctx, run_or_session)
    stopped = _cloud(ctx).cancel_run(ctx.owner, run.id)
    if as_json:
        print_json(stopped.to_dict())
    elif stopped.active:
        click.echo(f"stopping {stopped.id} (the worker stops it within seconds)")
    else:
        click.echo(f"stopped {stopped.id}")


# repositories


@cloud.group("repos")
def repos() -> None:
    """The repositories runs clone (per account)."""


@repos.command("list")
@json_option
@pass_ctx
def repos_list(ctx: Context, as_json: bool) -> None:
    """My repositories.

    Example: baton cloud repos list
    """
    found = _cloud(ctx).repos(ctx.owner)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    if not found:
        click.echo("no repositories")
        return
    from rich.table import Table

    table = Table(pad_edge=False)
    for name in ("Repo ID", "Name", "URL", "Branch", "Credentials"):
        table.add_column(name, no_wrap=True, style="cyan" if name == "Repo ID" else None)
    for r in found:
        table.add_row(
            r.id,
            markup(r.name),
            markup(r.url),
            markup(r.default_branch or "-"),
            "yes" if r.to_dict()["has_credentials"] else "-",
        )
    console().print(table)


@repos.command("add")
@click.argument("url")
@click.option("--name", help="Its name (default: the URL's last part, without .git).")
@click.option("--branch", "default_branch", help="The branch runs start from by default.")
@click.option(
    "--credentials",
    metavar="USER:PASSWORD|TOKEN|-",
    help="For an https URL (kept sealed on the server); `-` reads them from stdin.",
)
@json_option
@pass_ctx
def repos_add(
    ctx: Context,
    url: str,
    name: str | None,
    default_branch: str | None,
    credentials: str | None,
    as_json: bool,
) -> None:
    """Add a repository: an https://, ssh://, git:// or file:// clone URL, or an absolute
    path on the server. Credentials in an https URL are taken out of it and kept sealed.

    Example: baton cloud repos add git@github.com:team/widgets.git --branch main
    """
    if credentials == "-":
        credentials = sys.stdin.readline().rstrip("\r\n")
    repo = _cloud(ctx).add_repo(
        ctx.owner, url, name=name, credentials=credentials, default_branch=default_branch
    )
    if as_json:
        print_json(repo.to_dict())
    else:
        click.echo(f"{repo.id} {repo.name} {repo.url}")


@repos.command("remove")
@click.argument("repo")
@json_option
@pass_ctx
def repos_remove(ctx: Context, repo: str, as_json: bool) -> None:
    """Remove a repository (id or name); its runs keep their record.

    Example: baton cloud repos remove widgets
    """
    _cloud(ctx).remove_repo(ctx.owner, repo)
    if as_json:
        print_json({"deleted": repo})
    else:
        click.echo(f"removed {repo}")


# environments


def _pairs(values: tuple[str, ...], what: str, from_env: bool = False) -> dict[str, str]:
    """K=V options as a dict; with `from_env`, a bare K takes the value of $K here."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            if not from_env:
                raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint=what)
            if key.startswith("BATON_"):  # baton's own settings are read by config alone
                raise click.BadParameter(
                    f"{key} is one of baton's settings: give {key}=VALUE", param_hint=what
                )
            shell = dict(os.environ)
            if key not in shell:
                raise click.BadParameter(
                    f"{key} is not set in this shell: give {key}=VALUE or export {key}",
                    param_hint=what,
                )
            value = shell[key]
        out[key] = value
    return out


def _env_table(found: list[Any]) -> Any:
    from rich.table import Table

    table = Table(pad_edge=False)
    for name in ("Env ID", "Name", "Variables", "Secrets", "Setup", "Network", "Model", "Push"):
        table.add_column(name, style="cyan" if name == "Env ID" else None)
    for e in found:
        table.add_row(
            e.id,
            markup(e.name),
            markup(", ".join(f"{k}={v}" for k, v in e.variables.items()) or "-"),
            markup(", ".join(e.secret_names) or "-"),
            markup("; ".join(s["command"] for s in e.setup) or "-"),
            "on" if e.network else "off",
            markup(e.model or "-"),
            "yes" if e.push else "no",
        )
    return table


@cloud.group("envs")
def envs() -> None:
    """Environments: variables, write-only secrets, setup commands, network, model, push."""


@envs.command("list")
@json_option
@pass_ctx
def envs_list(ctx: Context, as_json: bool) -> None:
    """My environments (their secrets' names, never their values).

    Example: baton cloud envs list --json
    """
    found = _cloud(ctx).environments(ctx.owner)
    if as_json:
        print_json([e.to_dict() for e in found])
    elif not found:
        click.echo("no environments")
    else:
        console().print(_env_table(found))


_VAR = click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="A variable.")
_SECRET = click.option(
    "--secret",
    "secrets",
    multiple=True,
    metavar="NAME[=VALUE]",
    help="A secret (write-only); a bare NAME takes the value of $NAME in this shell.",
)
_SETUP = click.option(
    "--setup", multiple=True, metavar="CMD", help="A setup command (in order; at most 20)."
)
_NETWORK = click.option(
    "--network/--no-network", default=None, help="Whether the agent has the network (setup has)."
)
_PUSH = click.option(
    "--push/--no-push", default=None, help="Push the session's branch back at the end."
)


@envs.command("add")
@click.argument("name")
@_VAR
@_SECRET
@_SETUP
@_NETWORK
@click.option("--model", help="The model runs use (default: the server's).")
@_PUSH
@json_option
@pass_ctx
def envs_add(
    ctx: Context,
    name: str,
    variables: tuple[str, ...],
    secrets: tuple[str, ...],
    setup: tuple[str, ...],
    network: bool | None,
    model: str | None,
    push: bool | None,
    as_json: bool,
) -> None:
    """Add an environment.

    Example: baton cloud envs add ci --var NODE_ENV=test --secret NPM_TOKEN --setup "npm ci"
    """
    env = _cloud(ctx).add_environment(
        ctx.owner,
        name,
        variables=_pairs(variables, "--var"),
        secrets=_pairs(secrets, "--secret", from_env=True),
        setup=list(setup),
        network=bool(network),
        model=model,
        push=bool(push),
    )
    if as_json:
        print_json(env.to_dict())
    else:
        click.echo(f"{env.id} {env.name}")


@envs.command("set")
@click.argument("environment")
@click.option("--name", help="A new name.")
@_VAR
@click.option("--unset", multiple=True, metavar="NAME", help="Remove a variable.")
@_SECRET
@click.option("--unset-secret", multiple=True, metavar="NAME", help="Remove a secret.")
@_SETUP
@click.option("--no-setup", is_flag=True, help="Remove every setup command.")
@_NETWORK
@click.option("--model", help="The model runs use.")
@_PUSH
@json_option
@pass_ctx
def envs_set(
    ctx: Context,
    environment: str,
    name: str | None,
    variables: tuple[str, ...],
    unset: tuple[str, ...],
    secrets: tuple[str, ...],
    unset_secret: tuple[str, ...],
    setup: tuple[str, ...],
    no_setup: bool,
    network: bool | None,
    model: str | None,
    push: bool | None,
    as_json: bool,
) -> None:
    """Change an environment (id or name): what is given changes; --setup replaces the
    setup commands.

    Example: baton cloud envs set ci --secret API_KEY=new-value --unset DEBUG --network
    """
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if variables or unset:
        changes["variables"] = {**dict.fromkeys(unset), **_pairs(variables, "--var")}
    if secrets or unset_secret:
        changes["secrets"] = {
            **dict.fromkeys(unset_secret),
            **_pairs(secrets, "--secret", from_env=True),
        }
    if setup or no_setup:
        changes["setup"] = list(setup)
    if network is not None:
        changes["network"] = network
    if push is not None:
        changes["push"] = push
    if model is not None:
        changes["model"] = model
    env = _cloud(ctx).change_environment(ctx.owner, environment, changes)
    if as_json:
        print_json(env.to_dict())
    else:
        click.echo(f"{env.id} {env.name} changed")


@envs.command("remove")
@click.argument("environment")
@json_option
@pass_ctx
def envs_remove(ctx: Context, environment: str, as_json: bool) -> None:
    """Remove an environment (id or name).

    Example: baton cloud envs remove ci
    """
    _cloud(ctx).remove_environment(ctx.owner, environment)
    if as_json:
        print_json({"deleted": environment})
    else:
        echo(f"removed {environment}")


COMMANDS = [cloud]
