"""The pages of server runs (issue 15): start a session on a repository (the "New session"
form of Recent Sessions), continue one with a prompt or move a terminal session to the server,
stop a run, and manage the account's repositories and environments. Every form is a
CSRF-checked POST answered with a redirect (303); a refused one shows its page again with
the one-line reason and what was typed, under the error's status. Secrets go in through
these forms and never come back out: a page shows their names with "set"."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse

from baton.core.errors import BatonError, InvalidInput, NotFound, RateLimited
from baton.core.models import JSON
from baton.core.runs import MAX_SETUP_COMMANDS, Environment, Repo
from baton.server.deps import ServiceDep
from baton.server.pages import (
    check_csrf,
    conversation_page,
    go,
    index_page,
    need,
    render,
)

if TYPE_CHECKING:
    from baton.service import Service

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

Text = Annotated[str, Form(max_length=200)]
LongText = Annotated[str, Form(max_length=100_000)]
Many = Annotated[list[str], Form(max_length=2000)]
BLANK_SETUP_ROWS = 3  # empty setup rows a form offers after the commands it has


# runs
@router.post("/runs")
def start(
    request: Request,
    service: ServiceDep,
    csrf: Annotated[str, Form()] = "",
    repo: Text = "",
    branch: Text = "",
    environment: Text = "",
    model: Text = "",
    prompt: LongText = "",
) -> Response:
    """Start: a new session on the repository, its first run queued; on to its page."""
    account = need(request)
    check_csrf(request, csrf)
    try:
        if not repo:
            raise InvalidInput("choose a repository")
        _, session = service.start_run(
            account.id,
            prompt,
            repo=repo,
            branch=branch.strip() or None,
            environment=environment or None,
            model=model.strip() or None,
        )
    except BatonError as exc:
        typed = {"repo": repo, "branch": branch, "environment": environment, "model": model,
                 "prompt": prompt}  # fmt: skip
        wait = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return index_page(
            request, service, account, start=typed, error=exc.message, code=exc.status,
            headers=wait,
        )  # fmt: skip
    return go(f"/sessions/{session.id}")


@router.post("/sessions/{session_id}/runs")
def continue_session(
    request: Request,
    service: ServiceDep,
    session_id: str,
    csrf: Annotated[str, Form()] = "",
    prompt: LongText = "",
    repo: Text = "",
    environment: Text = "",
    branch: Text = "",
) -> Response:
    """The next run of a session: a prompt from its page (the session's repository), or a
    terminal session continued on the server (the repository and environment chosen)."""
    account = need(request)
    check_csrf(request, csrf)
    service.get(account.id, session_id)  # someone else's session: 404, not a form error
    try:
        service.start_run(
            account.id,
            prompt,
            session_id=session_id,
            repo=repo or None,
            environment=environment or None,
            branch=branch.strip() or None,
        )
    except BatonError as exc:
        return conversation_page(
            request, service, account, session_id, prompt=prompt, error=exc.message,
            code=exc.status,
        )  # fmt: skip
    return go(f"/sessions/{session_id}#run-panel")


@router.post("/runs/{run_id}/cancel")
def cancel(
    request: Request, service: ServiceDep, run_id: str, csrf: Annotated[str, Form()] = ""
) -> Response:
    """Stop: a queued run ends at once, a working one within seconds."""
    account = need(request)
    check_csrf(request, csrf)
    run = service.run(account.id, run_id)
    try:
        service.cancel_run(account.id, run_id)
    except BatonError as exc:
        return conversation_page(
            request, service, account, run.session_id, error=exc.message, code=exc.status
        )
    return go(f"/sessions/{run.session_id}#run-panel")


# repositories
@router.get("/repos")
def repos(request: Request, service: ServiceDep) -> Response:
    account = need(request)
    return _repos_page(request, service, account.id)


def _repos_page(
    request: Request,
    service: Service,
    owner: str,
    typed: dict[str, str] | None = None,
    error: str | None = None,
    code: int = 200,
) -> Response:
    return render(
        request,
        "repos.html",
        {"repos": service.repos(owner), "typed": typed or {}, "error": error},
        code,
    )


@router.post("/repos")
def add_repo(
    request: Request,
    service: ServiceDep,
    csrf: Annotated[str, Form()] = "",
    url: Annotated[str, Form(max_length=2000)] = "",
    name: Text = "",
    default_branch: Text = "",
    credentials: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    account = need(request)
    check_csrf(request, csrf)
    try:
        service.add_repo(
            account.id,
            url.strip(),
            name=name.strip() or None,
            credentials=credentials.strip() or None,
            default_branch=default_branch.strip() or None,
        )
    except BatonError as exc:
        typed = {"url": url, "name": name, "default_branch": default_branch}
        return _repos_page(request, service, account.id, typed, exc.message, exc.status)
    return go("/repos")


def _repo(service: Service, owner: str, repo_id: str) -> Repo:
    found = next((r for r in service.repos(owner) if r.id == repo_id), None)
    if found is None:
        raise NotFound(f"no repository {repo_id}")
    return found


@router.get("/repos/{repo_id}/delete")
def delete_repo_form(request: Request, service: ServiceDep, repo_id: str) -> Response:
    account = need(request)
    repo = _repo(service, account.id, repo_id)
    return render(request, "confirm_delete.html", {"kind": "repository", "thing": repo,
                  "action": f"/repos/{repo.id}/delete", "back": "/repos"})  # fmt: skip


@router.post("/repos/{repo_id}/delete")
def delete_repo(
    request: Request, service: ServiceDep, repo_id: str, csrf: Annotated[str, Form()] = ""
) -> Response:
    account = need(request)
    check_csrf(request, csrf)
    service.remove_repo(account.id, _repo(service, account.id, repo_id).id)
    return go("/repos")


# environments
@router.get("/environments")
def environments(request: Request, service: ServiceDep) -> Response:
    account = need(request)
    return _environments_page(request, service, account.id)


def _environments_page(
    request: Request,
    service: Service,
    owner: str,
    typed: dict[str, Any] | None = None,
    error: str | None = None,
    code: int = 200,
) -> Response:
    typed = typed or {}
    rows = _setup_rows(typed.get("setup", []))
    return render(
        request,
        "environments.html",
        {"environments": service.environments(owner), "typed": typed, "rows": rows,
         "error": error},
        code,
    )  # fmt: skip


@router.post("/environments")
def add_environment(
    request: Request,
    service: ServiceDep,
    csrf: Annotated[str, Form()] = "",
    name: Text = "",
    variables: LongText = "",
    secrets: LongText = "",
    setup_command: Many = [],  # noqa: B006 (FastAPI copies defaults)
    setup_timeout: Many = [],  # noqa: B006
    network: Text = "",
    model: Text = "",
    push: Text = "",
) -> Response:
    account = need(request)
    check_csrf(request, csrf)
    typed: dict[str, Any] = {"name": name, "variables": variables, "network": bool(network),
        "model": model, "push": bool(push),
        "setup": list(zip(setup_command, setup_timeout, strict=False))}  # fmt: skip
    try:
        service.add_environment(
            account.id,
            name.strip(),
            variables=_pairs(variables, "variable"),
            secrets=_pairs(secrets, "secret"),
            setup=_setup(setup_command, setup_timeout),
            network=bool(network),
            model=model.strip() or None,
            push=bool(push),
        )
    except BatonError as exc:
        return _environments_page(request, service, account.id, typed, exc.message, exc.status)
    return go("/environments")


def _environment(service: Service, owner: str, environment_id: str) -> Environment:
    found = next((e for e in service.environments(owner) if e.id == environment_id), None)
    if found is None:
        raise NotFound(f"no environment {environment_id}")
    return found


@router.get("/environments/{environment_id}")
def edit_environment_form(request: Request, service: ServiceDep, environment_id: str) -> Response:
    account = need(request)
    return _edit_page(request, _environment(service, account.id, environment_id))


def _edit_page(
    request: Request,
    environment: Environment,
    typed: dict[str, Any] | None = None,
    error: str | None = None,
    code: int = 200,
) -> Response:
    if typed is None:
        typed = {
            "name": environment.name,
            "variables": "\n".join(f"{k}={v}" for k, v in environment.variables.items()),
            "network": environment.network,
            "model": environment.model or "",
            "push": environment.push,
            "setup": [
                (s.get("command", ""), _seconds(s.get("timeout"))) for s in environment.setup
            ],
        }
    return render(
        request,
        "environment.html",
        {"environment": environment, "typed": typed, "rows": _setup_rows(typed["setup"]),
         "error": error},
        code,
    )  # fmt: skip


@router.post("/environments/{environment_id}")
def edit_environment(
    request: Request,
    service: ServiceDep,
    environment_id: str,
    csrf: Annotated[str, Form()] = "",
    name: Text = "",
    variables: LongText = "",
    secret_name: Many = [],  # noqa: B006 (FastAPI copies defaults)
    secret_value: Many = [],  # noqa: B006
    secret_remove: Many = [],  # noqa: B006
    new_secrets: LongText = "",
    setup_command: Many = [],  # noqa: B006
    setup_timeout: Many = [],  # noqa: B006
    network: Text = "",
    model: Text = "",
    push: Text = "",
) -> Response:
    """Change an environment. A secret keeps its value unless a new one is typed or it is
    ticked for removal; new ones come as NAME=value lines."""
    account = need(request)
    check_csrf(request, csrf)
    environment = _environment(service, account.id, environment_id)
    typed: dict[str, Any] = {"name": name, "variables": variables, "network": bool(network),
        "model": model, "push": bool(push),
        "setup": list(zip(setup_command, setup_timeout, strict=False))}  # fmt: skip
    try:
        secrets: dict[str, str | None] = {}
        for key, value in zip(secret_name, secret_value, strict=False):
            if value and key in environment.secret_names:
                secrets[key] = value
        for key in secret_remove:
            if key in environment.secret_names:
                secrets[key] = None
        secrets.update(_pairs(new_secrets, "secret"))
        plain: dict[str, str | None] = dict.fromkeys(environment.variables)  # lines removed
        plain.update(_pairs(variables, "variable"))
        changes: JSON = {
            "name": name.strip(),
            "variables": plain,
            "setup": _setup(setup_command, setup_timeout),
            "network": bool(network),
            "model": model.strip() or None,
            "push": bool(push),
        }
        if secrets:
            changes["secrets"] = secrets
        service.change_environment(account.id, environment.id, changes)
    except BatonError as exc:
        return _edit_page(request, environment, typed, exc.message, exc.status)
    return go("/environments")


@router.get("/environments/{environment_id}/delete")
def delete_environment_form(request: Request, service: ServiceDep, environment_id: str) -> Response:
    account = need(request)
    environment = _environment(service, account.id, environment_id)
    return render(request, "confirm_delete.html", {"kind": "environment", "thing": environment,
                  "action": f"/environments/{environment.id}/delete",
                  "back": "/environments"})  # fmt: skip


@router.post("/environments/{environment_id}/delete")
def delete_environment(
    request: Request, service: ServiceDep, environment_id: str, csrf: Annotated[str, Form()] = ""
) -> Response:
    account = need(request)
    check_csrf(request, csrf)
    service.remove_environment(account.id, _environment(service, account.id, environment_id).id)
    return go("/environments")


# form values
def _pairs(text: str, kind: str) -> dict[str, str]:
    """NAME=value lines (blank lines skipped) as a mapping; a line without "=" is refused."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"{kind} line {number}: write it as NAME=value")
        found[key.strip()] = value
    return found


def _setup(commands: Sequence[str], timeouts: Sequence[str]) -> list[JSON]:
    """The setup rows that hold a command, in order, each with its timeout (seconds) if
    one is given."""
    found: list[JSON] = []
    for number, command in enumerate(commands, 1):
        if not command.strip():
            continue
        entry: JSON = {"command": command.strip()}
        timeout = timeouts[number - 1].strip() if number <= len(timeouts) else ""
        if timeout:
            try:
                seconds = float(timeout)
            except ValueError:
                seconds = 0.0
            if not 0 < seconds <= 86_400:
                raise InvalidInput(
                    f"setup command {number}: the timeout is a number of seconds (1 to 86400)"
                )
            entry["timeout"] = seconds
        found.append(entry)
    if len(found) > MAX_SETUP_COMMANDS:
        raise InvalidInput(f"at most {MAX_SETUP_COMMANDS} setup commands")
    return found


def _seconds(value: object) -> str:
    if isinstance(value, int | float):
        return f"{value:g}"
    return ""


def _setup_rows(rows: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The setup rows a form shows: those it has, then blank ones (up to the limit)."""
    filled = [(c, t) for c, t in rows if c.strip() or t.strip()]
    blanks = max(min(BLANK_SETUP_ROWS, MAX_SETUP_COMMANDS - len(filled)), 0)
    return filled + [("", "")] * blanks
