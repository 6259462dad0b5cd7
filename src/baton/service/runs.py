"""Server runs (issue 15): an owner's repositories and environments, starting, listing and
stopping runs of the agent on a session; and what a worker asks (claim a queued run, move it
on, renew its heartbeat, fail the runs whose worker went quiet, read what a run needs with
its secrets opened). Secrets and credentials are sealed (baton.sealing) before the store sees
them and leave only through `run_context`, for the executor.

Every change of a run's state is published to the session's watchers as
`{"kind": "run", "run": run.to_dict()}`; a queued run is handed to the queue."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import orjson

from baton.core.errors import Conflict, InvalidInput, NotFound, RateLimited
from baton.core.models import JSON, Session, format_time, parse_time
from baton.core.runs import (
    ACTIVE_STATES,
    FAILED,
    FINAL_STATES,
    MAX_SETUP_COMMANDS,
    QUEUED,
    STOPPED,
    Environment,
    Repo,
    Run,
    new_environment_id,
    new_repo_id,
    new_run_id,
)
from baton.sealing import Sealer, Unsealable
from baton.service.common import Events, Ports, Queue, owned

log = logging.getLogger("baton.runs")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BRANCH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/+-]{0,199}$")
SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/\s].*$")  # git@host:org/repo.git
URL_SCHEMES = ("https", "http", "ssh", "git", "file")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_VARIABLES = 100
FORK_DEPTH = 100  # sessions followed up a chain of forks for the environments they ran with
MASKED_FROM = 4  # characters: shorter secret values are not masked (runs.masking.MIN_LENGTH)
MAX_VALUE = 32 * 1024  # characters of a variable's or a secret's value
MAX_PROMPT = 64 * 1024
DEFAULT_SETUP_TIMEOUT = 600.0
MAX_SETUP_TIMEOUT = 24 * 3600.0
TITLE_CHARS = 80
STOPPED_WORKER = "the worker stopped answering"
ENVIRONMENT_FIELDS = frozenset(
    {"name", "variables", "secrets", "setup", "network", "model", "push"}
)


class RunPorts(Ports, Protocol):
    """What these use cases work over (the Service is one)."""

    events: Events
    queue: Queue
    max_runs: int
    private_roots: tuple[Path, ...]

    @property
    def sealer(self) -> Sealer: ...

    def create(
        self,
        owner: str,
        *,
        title: str | None = None,
        task: str = "",
        metadata: JSON | None = None,
        git: JSON | None = None,
        platform: str = "cli",
        repo: str | None = None,
    ) -> Session: ...

    def update(
        self,
        owner: str,
        session_id: str,
        *,
        expected_version: int | None = None,
        title: str | None = None,
        task: str | None = None,
        status: str | None = None,
        metadata: JSON | None = None,
        git: JSON | None = None,
    ) -> Session: ...


@dataclass(frozen=True)
class RunContext:
    """What the executor needs for one run, secrets opened: never shown, never stored."""

    run: Run
    session: Session
    repo: Repo | None
    environment: Environment | None
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    credentials: str | None = field(default=None, repr=False)  # USER:PASSWORD or a token


# checks of what a user gives


def _unicode(value: str, what: str) -> str:
    """`value`, if it is valid Unicode (no lone surrogate, which no database stores)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what}: text is not valid Unicode (a lone surrogate?)") from None
    return value


def _text(value: Any, what: str, limit: int = 200) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must be a non-empty string")
    _unicode(value, what)
    if CONTROL.search(value):
        raise InvalidInput(f"{what} must not hold control characters")
    if len(value) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters")
    return value.strip()


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise InvalidInput(
            f"{what} {value!r} is not a name: use letters, digits, '.', '_' and '-' "
            "(at most 100, starting with a letter or digit)"
        )
    return value


def _branch(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not BRANCH.fullmatch(value) or ".." in value:
        raise InvalidInput(f"branch {value!r} is not a branch name")
    return value


def _model(value: Any) -> str | None:
    return None if value is None else _text(value, "model")


def split_url(url: Any) -> tuple[str, str | None, str]:
    """A clone URL as stored (credentials taken out), its credentials (USER:PASSWORD or a
    token, from an http(s) URL), and the repository's default name."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("a repository needs a clone URL")
    url = _unicode(url.strip(), "the repository URL")
    if CONTROL.search(url) or len(url) > 2000:
        raise InvalidInput("the repository URL holds control characters or is too long")
    if url.startswith("-"):
        raise InvalidInput(f"{url!r} is not a clone URL")
    credentials = None
    if url.startswith("/"):
        path = url
    elif SCP_LIKE.match(url) and "://" not in url:
        path = url.split(":", 1)[1]
    else:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - a bad port raises here
        except ValueError:
            raise InvalidInput(f"{url!r} is not a clone URL") from None
        if parts.scheme not in URL_SCHEMES:
            raise InvalidInput(
                f"{url!r} is not a clone URL: use https://, ssh://, git://, file:// "
                "or an absolute path on the server"
            )
        if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
            raise InvalidInput(f"{url!r} names a host: use file:///ABSOLUTE/PATH")
        if parts.scheme in ("https", "http") and parts.password is not None:
            user = unquote(parts.username or "")
            credentials = f"{user}:{unquote(parts.password)}" if user else unquote(parts.password)
        elif parts.scheme in ("https", "http") and parts.username:
            credentials = unquote(parts.username)  # a token given as the user
        if credentials is not None:
            host = parts.hostname or ""
            netloc = host if parts.port is None else f"{host}:{parts.port}"
            url = urlunsplit(parts._replace(netloc=netloc))
        path = parts.path
        if parts.scheme != "file" and not (parts.hostname or ""):
            raise InvalidInput(f"{url!r} names no host")
    name = path.rstrip("/").rsplit("/", 1)[-1]
    name = name.removesuffix(".git") or "repo"
    return url, credentials, name


def _variables(value: Any, what: str, allow_none: bool = False) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be an object of NAME: value")
    if len(value) > MAX_VARIABLES:
        raise InvalidInput(f"{what}: at most {MAX_VARIABLES}")
    for key, item in value.items():
        if not isinstance(key, str) or not VARIABLE.fullmatch(key):
            raise InvalidInput(
                f"{what}: {key!r} is not a name like API_KEY ([A-Za-z_][A-Za-z0-9_]*)"
            )
        if item is None and allow_none:
            continue
        if not isinstance(item, str) or "\x00" in item or len(item) > MAX_VALUE:
            raise InvalidInput(
                f"{what}: the value of {key} must be a string without NUL, at most "
                f"{MAX_VALUE} characters"
            )
        _unicode(item, f"{what}: the value of {key}")
        if what == "secrets" and not item:
            raise InvalidInput(f"secrets: the value of {key} is empty")
    return dict(value)


def _setup(value: Any) -> tuple[JSON, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidInput("setup must be a list of commands (strings or {command, timeout})")
    if len(value) > MAX_SETUP_COMMANDS:
        raise InvalidInput(f"setup: at most {MAX_SETUP_COMMANDS} commands, not {len(value)}")
    out: list[JSON] = []
    for i, item in enumerate(value, 1):
        timeout: Any = DEFAULT_SETUP_TIMEOUT
        if isinstance(item, dict):
            unknown = set(item) - {"command", "timeout"}
            if unknown:
                raise InvalidInput(
                    f"setup command {i}: unknown key(s) {', '.join(sorted(unknown))}"
                )
            command, timeout = item.get("command"), item.get("timeout", DEFAULT_SETUP_TIMEOUT)
        else:
            command = item
        if not isinstance(command, str) or not command.strip() or "\x00" in command:
            raise InvalidInput(f"setup command {i} needs a command (a non-empty string)")
        _unicode(command, f"setup command {i}")
        if len(command) > MAX_VALUE:
            raise InvalidInput(f"setup command {i} is longer than {MAX_VALUE} characters")
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= MAX_SETUP_TIMEOUT
        ):
            raise InvalidInput(
                f"setup command {i}: timeout must be seconds between 0 and {MAX_SETUP_TIMEOUT:g}"
            )
        out.append({"command": command, "timeout": float(timeout)})
    return tuple(out)


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{what} must be true or false")
    return value


# repositories


def _find(items: Sequence[Any], key: str, what: str) -> Any:
    for item in items:
        if item.id == key:
            return item
    for item in items:
        if item.name == key:
            return item
    raise NotFound(f"no {what} {key}")


def repos(p: RunPorts, owner: str) -> list[Repo]:
    return p.store.list_repos(owner)


def find_repo(p: RunPorts, owner: str, key: str) -> Repo:
    """One of the owner's repositories, by id or name; anyone else's is 404 alike."""
    if key.startswith("repo_"):
        found = p.store.get_repo(key)
        if found is not None and found.owner == owner:
            return found
    result: Repo = _find(p.store.list_repos(owner), key, "repository")
    return result


def local_path(url: str) -> str | None:
    """The folder on the server a clone URL names (a path or file://), else None."""
    if url.startswith("/"):
        return url
    if url.startswith("file:"):
        return unquote(urlsplit(url).path)
    return None


def _not_private(p: RunPorts, url: str) -> None:
    """A repository on the server must not be inside baton's own data (the workspaces of
    other accounts' runs, the store)."""
    path = local_path(url)
    if path is None:
        return
    resolved = Path(path).resolve()
    for root in p.private_roots:
        if resolved.is_relative_to(root.resolve()):
            raise InvalidInput(f"{url!r} is inside baton's data folder: runs cannot clone it")


def add_repo(
    p: RunPorts,
    owner: str,
    url: str,
    *,
    name: str | None = None,
    credentials: str | None = None,
    default_branch: str | None = None,
) -> Repo:
    clean, found, default_name = split_url(url)
    _not_private(p, clean)
    if credentials is not None:
        found = _text(credentials, "credentials", 4096)
    name = _name(default_name if name is None else name, "repository name")
    if any(r.name == name for r in p.store.list_repos(owner)):
        raise Conflict(f"a repository named {name!r} exists already: choose another name", None)
    repo_id = new_repo_id()
    repo = Repo(
        id=repo_id,
        owner=owner,
        name=name,
        url=clean,
        created_at=p.now(),
        default_branch=_branch(default_branch),
        credentials=None if found is None else p.sealer.seal(found.encode(), repo_id),
    )
    p.store.add_repo(repo)
    return repo


def remove_repo(p: RunPorts, owner: str, key: str) -> None:
    p.store.delete_repo(find_repo(p, owner, key).id)


# environments


def environments(p: RunPorts, owner: str) -> list[Environment]:
    return p.store.list_environments(owner)


def find_environment(p: RunPorts, owner: str, key: str) -> Environment:
    if key.startswith("env_"):
        found = p.store.get_environment(key)
        if found is not None and found.owner == owner:
            return found
    result: Environment = _find(p.store.list_environments(owner), key, "environment")
    return result


def _seal_secrets(p: RunPorts, environment_id: str, values: dict[str, str]) -> bytes | None:
    if not values:
        return None
    return p.sealer.seal(orjson.dumps(values, option=orjson.OPT_SORT_KEYS), environment_id)


def _open_secrets(p: RunPorts, environment: Environment) -> dict[str, str]:
    if environment.secrets is None:
        return {}
    opened: dict[str, str] = orjson.loads(p.sealer.open(environment.secrets, environment.id))
    return opened


def _environments_of(p: RunPorts, session_id: str) -> list[str]:
    """The environments of the session's runs, and of the runs of the sessions it was forked
    from (a fork keeps their git snapshot), newest first; and the one its metadata names."""
    found: list[str] = []
    visited: set[str] = set()
    current: str | None = session_id
    while current is not None and current not in visited and len(visited) < FORK_DEPTH:
        visited.add(current)
        session = p.store.get_session(current)
        if session is None:
            break
        found.extend(
            r.environment_id
            for r in p.store.list_runs(session_id=current, limit=100_000)
            if r.environment_id is not None
        )
        where = session.metadata.get("run") if isinstance(session.metadata, dict) else None
        if isinstance(where, dict) and isinstance(where.get("environment"), str):
            found.append(where["environment"])
        origin = session.forked_from or {}
        parent = origin.get("session")
        current = parent if isinstance(parent, str) else None
    return found


def session_secrets(p: RunPorts, session_id: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """The secrets of the environments the session's runs used, opened (value ->
    `environment secret NAME`, for the share scan: never shown, never stored), and the names
    of those whose secrets do not open with this server's secret. Values shorter than the
    runs mask (runs.masking.MIN_LENGTH) are left out, as the runs leave them. An environment
    removed since is not known any more; a secret changed since is scanned for as it is now."""
    known: dict[str, str] = {}
    unopened: list[str] = []
    seen: set[str] = set()
    for environment_id in _environments_of(p, session_id):
        if environment_id in seen:
            continue
        seen.add(environment_id)
        env = p.store.get_environment(environment_id)
        if env is None or env.secrets is None:
            continue
        try:
            opened = _open_secrets(p, env)
        except Unsealable:
            unopened.append(env.name)
            continue
        for name, value in sorted(opened.items()):
            if len(value) >= MASKED_FROM:
                known.setdefault(value, f"environment secret {name}")
    return known, tuple(unopened)


def _no_overlap(variables: dict[str, Any], secrets: dict[str, Any]) -> None:
    both = sorted(set(variables) & set(secrets))
    if both:
        raise InvalidInput(f"{', '.join(both)}: a name is a variable or a secret, not both")


def add_environment(
    p: RunPorts,
    owner: str,
    name: str,
    *,
    variables: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    setup: Sequence[JSON | str] = (),
    network: bool = False,
    model: str | None = None,
    push: bool = False,
) -> Environment:
    name = _name(name, "environment name")
    plain, hidden = _variables(variables, "variables"), _variables(secrets, "secrets")
    _no_overlap(plain, hidden)
    if any(e.name == name for e in p.store.list_environments(owner)):
        raise Conflict(f"an environment named {name!r} exists already: choose another name", None)
    now, environment_id = p.now(), new_environment_id()
    environment = Environment(
        id=environment_id,
        owner=owner,
        name=name,
        created_at=now,
        updated_at=now,
        variables=plain,
        secret_names=tuple(sorted(hidden)),
        secrets=_seal_secrets(p, environment_id, hidden),
        setup=_setup(setup),
        network=_flag(network, "network"),
        model=_model(model),
        push=_flag(push, "push"),
    )
    p.store.add_environment(environment)
    return environment


def change_environment(p: RunPorts, owner: str, key: str, changes: JSON) -> Environment:
    """`changes` as PATCH takes them: variables and secrets merge (a name mapped to null is
    removed), setup replaces the list, the rest replace their value."""
    if not isinstance(changes, dict):
        raise InvalidInput("changes must be a JSON object")
    unknown = set(changes) - ENVIRONMENT_FIELDS
    if unknown:
        raise InvalidInput(
            f"unknown field(s) {', '.join(sorted(unknown))}; the fields are "
            f"{', '.join(sorted(ENVIRONMENT_FIELDS))}"
        )
    current = find_environment(p, owner, key)
    update: dict[str, Any] = {"updated_at": p.now()}
    if "name" in changes:
        update["name"] = _name(changes["name"], "environment name")
        if any(
            e.name == update["name"] and e.id != current.id
            for e in p.store.list_environments(owner)
        ):
            raise Conflict(
                f"an environment named {update['name']!r} exists already: choose another name",
                None,
            )
    plain = dict(current.variables)
    if "variables" in changes:
        for k, v in _variables(changes["variables"], "variables", allow_none=True).items():
            if v is None:
                plain.pop(k, None)
            else:
                plain[k] = v
        update["variables"] = plain
    hidden_names = set(current.secret_names)
    if "secrets" in changes:
        given = _variables(changes["secrets"], "secrets", allow_none=True)
        # every secret named again: what is there need not open (a changed server secret)
        hidden = {} if hidden_names <= set(given) else _open_secrets(p, current)
        for k, v in given.items():
            if v is None:
                hidden.pop(k, None)
            else:
                hidden[k] = v
        hidden_names = set(hidden)
        update["secret_names"] = tuple(sorted(hidden))
        update["secrets"] = _seal_secrets(p, current.id, hidden)
    _no_overlap(plain, dict.fromkeys(hidden_names))
    if "setup" in changes:
        update["setup"] = _setup(changes["setup"])
    if "network" in changes:
        update["network"] = _flag(changes["network"], "network")
    if "push" in changes:
        update["push"] = _flag(changes["push"], "push")
    if "model" in changes:
        update["model"] = _model(changes["model"])
    changed = dataclasses.replace(current, **update)
    p.store.put_environment(changed)
    return changed


def remove_environment(p: RunPorts, owner: str, key: str) -> None:
    p.store.delete_environment(find_environment(p, owner, key).id)


# runs


def _published(p: RunPorts, run: Run) -> Run:
    p.events.publish(run.session_id, {"kind": "run", "run": run.to_dict()})
    return run


def run(p: RunPorts, owner: str, run_id: str) -> Run:
    found = p.store.get_run(run_id)
    if found is None or found.owner != owner:
        raise NotFound(f"no run {run_id}")
    return found


def runs(p: RunPorts, owner: str, *, session_id: str | None = None, limit: int = 50) -> list[Run]:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
        raise InvalidInput("limit must be between 1 and 500")
    if session_id is not None:
        owned(p, owner, session_id)
    return p.store.list_runs(owner=owner, session_id=session_id, limit=limit)


def _title(prompt: str) -> str:
    line = prompt.strip().splitlines()[0].strip()
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


def _same_remote(a: str, b: str) -> bool:
    """Whether two clone URLs name one repository (credentials, .git and case of the host
    aside: git@host:org/x.git and https://host/org/x are one)."""

    def key(url: str) -> str:
        url = url.strip().rstrip("/").removesuffix(".git")
        if SCP_LIKE.match(url) and "://" not in url:
            user_host, path = url.split(":", 1)
            return f"{user_host.split('@', 1)[1].lower()}/{path.strip('/')}"
        try:
            parts = urlsplit(url)
        except ValueError:
            return url
        if parts.scheme == "file" or not parts.scheme:
            return parts.path
        return f"{(parts.hostname or '').lower()}/{parts.path.strip('/')}"

    return key(a) == key(b)


def _session_repo(p: RunPorts, owner: str, session: Session) -> Repo | None:
    """The repository a session was run on, or that its recorded remote matches."""
    recorded = session.metadata.get("run") if isinstance(session.metadata, dict) else None
    if isinstance(recorded, dict) and isinstance(recorded.get("repo"), str):
        found = p.store.get_repo(recorded["repo"])
        if found is not None and found.owner == owner:
            return found
    remotes = [session.repo] if session.repo else []
    if isinstance(session.git, dict) and isinstance(session.git.get("remote"), str):
        remotes.append(session.git["remote"])
    for candidate in p.store.list_repos(owner):
        if any(_same_remote(candidate.url, remote) for remote in remotes):
            return candidate
    return None


def _check_limit(p: RunPorts, owner: str) -> None:
    active = p.store.active_runs(owner)
    if len(active) >= p.max_runs:
        raise RateLimited(
            f"{len(active)} runs of this account are queued or running; the limit is "
            f"{p.max_runs} (BATON_MAX_RUNS): wait for one to end or stop one",
            retry_after=30,
        )


def _check_idle(p: RunPorts, session: Session) -> None:
    for other in p.store.list_runs(session_id=session.id, limit=5):
        if other.active:
            raise Conflict(
                f"session {session.id} has a run in progress ({other.id}): wait for it or stop it",
                None,
            )


def start_run(
    p: RunPorts,
    owner: str,
    prompt: str,
    *,
    repo: str | None = None,
    branch: str | None = None,
    environment: str | None = None,
    model: str | None = None,
    session_id: str | None = None,
) -> tuple[Run, Session]:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInput("a run needs a task: the prompt is empty")
    if len(prompt) > MAX_PROMPT or "\x00" in prompt:
        raise InvalidInput(f"the prompt must be text of at most {MAX_PROMPT} characters")
    _unicode(prompt, "the prompt")
    branch, model = _branch(branch), _model(model)
    session = None if session_id is None else owned(p, owner, session_id)
    chosen = None if repo is None else find_repo(p, owner, repo)
    env = None if environment is None else find_environment(p, owner, environment)
    recorded: JSON = {}
    if session is not None:
        meta = session.metadata.get("run") if isinstance(session.metadata, dict) else None
        recorded = dict(meta) if isinstance(meta, dict) else {}
        _check_idle(p, session)
        if chosen is None:
            chosen = _session_repo(p, owner, session)
        if chosen is None:
            raise InvalidInput(
                f"session {session.id} has no repository this server knows: add its remote "
                "(baton cloud repos add URL) or name one (--repo)"
            )
        if env is None and isinstance(recorded.get("environment"), str):
            found = p.store.get_environment(recorded["environment"])
            env = found if found is not None and found.owner == owner else None
        if branch is None and recorded.get("repo") == chosen.id:
            branch = _branch(recorded.get("branch"))
        if branch is None and isinstance(session.git, dict):
            recorded_branch = session.git.get("branch")
            branch = recorded_branch if isinstance(recorded_branch, str) else None
    elif chosen is None:
        raise InvalidInput("a run needs a repository (repo) or a session to continue")
    branch = branch or chosen.default_branch
    _check_limit(p, owner)
    where: JSON = {
        "repo": chosen.id,
        "environment": None if env is None else env.id,
        "branch": branch,
    }
    if session is None:
        session = p.create(
            owner,
            title=_title(prompt),
            task=prompt.strip(),
            metadata={"run": where},
            platform="web",
            repo=chosen.url,
        )
    elif recorded != where:
        session = p.update(owner, session.id, metadata={**session.metadata, "run": where})
    now = p.now()
    queued = Run(
        id=new_run_id(),
        owner=owner,
        session_id=session.id,
        repo_id=chosen.id,
        environment_id=None if env is None else env.id,
        branch=branch,
        prompt=prompt,
        state=QUEUED,
        created_at=now,
        updated_at=now,
        model=model,
        times={QUEUED: now},
    )
    p.store.add_run(queued)
    _published(p, queued)
    try:
        p.queue.submit(queued)
    except Exception:  # stored queued: the reaper submits it again (resubmit_runs)
        log.exception("run %s is queued but could not be submitted", queued.id)
    return queued, session


def cancel_run(p: RunPorts, owner: str, run_id: str) -> Run:
    """Queued: stopped at once. Preparing or running: the worker is asked to stop (it ends
    the run "stopped" within seconds). Ended: 409."""
    for _ in range(10):
        current = run(p, owner, run_id)
        if current.state in FINAL_STATES:
            raise Conflict(
                f"run {run_id} has ended ({current.state}): there is nothing to stop", None
            )
        if current.state == QUEUED:
            changed = current.moved(STOPPED, p.now())
        elif current.cancel_requested:
            return current
        else:
            changed = dataclasses.replace(current, cancel_requested=True, updated_at=p.now())
        if p.store.put_run(changed, expect_states=[current.state]):
            return _published(p, changed)
    raise Conflict(f"run {run_id} keeps changing; try again", None)


# what a worker asks


def claim_run(p: RunPorts, worker: str) -> Run | None:
    claimed = p.store.claim_run(worker, p.now())
    return None if claimed is None else _published(p, claimed)


def _stored(p: RunPorts, run_id: str) -> Run:
    found = p.store.get_run(run_id)
    if found is None:
        raise NotFound(f"no run {run_id}")
    return found


def move_run(p: RunPorts, run_id: str, state: str, **changes: Any) -> Run:
    """The run moved to `state` (with `changes`), if its stored state allows it: Conflict
    when another writer moved it first (a Stop of a queued run, the reaper)."""
    for _ in range(10):
        current = _stored(p, run_id)
        try:
            moved = current.moved(state, p.now(), **changes)
        except ValueError as exc:
            raise Conflict(f"run {run_id}: {exc}", None) from None
        if p.store.put_run(moved, expect_states=[current.state]):
            return _published(p, _stored(p, run_id))
    raise Conflict(f"run {run_id} keeps changing; try again", None)


def heartbeat(p: RunPorts, run_id: str) -> Run:
    """Renew a working run's heartbeat; the run as stored (cancel_requested tells the worker
    to stop; an ended state, that it was failed meanwhile)."""
    current = _stored(p, run_id)
    if current.state in ACTIVE_STATES:
        p.store.put_run(
            dataclasses.replace(current, heartbeat_at=p.now()), expect_states=[current.state]
        )
    return _stored(p, run_id)


def reap_runs(p: RunPorts, older_than: float) -> list[Run]:
    """Fail the preparing and running runs whose heartbeat is older than `older_than`
    seconds: their worker died."""
    now = p.now()
    before = format_time(parse_time(now) - timedelta(seconds=older_than))
    failed = []
    for stale in p.store.stale_runs(before):
        moved = stale.moved(FAILED, now, error=STOPPED_WORKER)
        if p.store.put_run(moved, expect_states=[stale.state]):
            failed.append(_published(p, moved))
    return failed


def resubmit_runs(p: RunPorts, older_than: float) -> list[Run]:
    """Hand the queue again every run queued more than `older_than` seconds ago (a submit
    that failed, a job lost): the queue takes a run once (procrastinate: its id is the job's
    queueing lock; a duplicate delivery claims nothing), so this may run any number of times."""
    before = format_time(parse_time(p.now()) - timedelta(seconds=older_than))
    waiting = p.store.waiting_runs(before)
    for run in waiting:
        p.queue.submit(run)
    return waiting


def run_context(p: RunPorts, run_id: str) -> RunContext:
    current = _stored(p, run_id)
    session = p.store.get_session(current.session_id)
    if session is None:
        raise NotFound(f"no session {current.session_id}")
    repo = None if current.repo_id is None else p.store.get_repo(current.repo_id)
    if current.repo_id is not None and repo is None:
        raise NotFound(f"the repository of run {run_id} was removed")
    env = None
    if current.environment_id is not None:
        env = p.store.get_environment(current.environment_id)
        if env is None:
            raise NotFound(f"the environment of run {run_id} was removed")
    credentials = None
    if repo is not None and repo.credentials is not None:
        credentials = p.sealer.open(repo.credentials, repo.id).decode()
    secrets = {} if env is None else _open_secrets(p, env)
    return RunContext(current, session, repo, env, secrets, credentials)
