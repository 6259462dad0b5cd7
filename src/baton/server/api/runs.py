"""/api/repos, /api/environments and /api/runs: the caller's repositories, environments and
server runs (issue 15). Owner-only like everything else: another account's id answers 404,
exactly like one that does not exist. Secrets go in and never come out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from baton.server import schemas
from baton.server.api.replies import reply, session_json
from baton.server.deps import Me, ServiceDep

router = APIRouter()
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": schemas.ErrorBody, "description": "Conflict"}
}


def _setup(items: list[str | schemas.SetupCommandIn]) -> list[Any]:
    return [item if isinstance(item, str) else item.model_dump() for item in items]


@router.get("/repos", response_model=list[schemas.RepoPublic], tags=["runs"])
def repos(account: Me, service: ServiceDep) -> Response:
    return reply([r.to_dict() for r in service.repos(account.id)])


@router.post(
    "/repos", response_model=schemas.RepoPublic, status_code=201, tags=["runs"], responses=CONFLICT
)
def add_repo(account: Me, service: ServiceDep, body: schemas.RepoCreate) -> Response:
    repo = service.add_repo(
        account.id,
        body.url,
        name=body.name,
        credentials=body.credentials,
        default_branch=body.default_branch,
    )
    return reply(repo.to_dict(), 201)


@router.delete("/repos/{repo_id}", response_model=schemas.Deleted, tags=["runs"])
def remove_repo(account: Me, service: ServiceDep, repo_id: str) -> Response:
    """Runs made on it keep their record; no new run can use it."""
    service.remove_repo(account.id, repo_id)
    return reply({"deleted": repo_id})


@router.get("/environments", response_model=list[schemas.EnvironmentPublic], tags=["runs"])
def environments(account: Me, service: ServiceDep) -> Response:
    return reply([e.to_dict() for e in service.environments(account.id)])


@router.post(
    "/environments",
    response_model=schemas.EnvironmentPublic,
    status_code=201,
    tags=["runs"],
    responses=CONFLICT,
)
def add_environment(account: Me, service: ServiceDep, body: schemas.EnvironmentCreate) -> Response:
    environment = service.add_environment(
        account.id,
        body.name,
        variables=body.variables,
        secrets=body.secrets,
        setup=_setup(body.setup),
        network=body.network,
        model=body.model,
        push=body.push,
    )
    return reply(environment.to_dict(), 201)


@router.patch(
    "/environments/{environment_id}",
    response_model=schemas.EnvironmentPublic,
    tags=["runs"],
    responses=CONFLICT,
)
def change_environment(
    account: Me, service: ServiceDep, environment_id: str, body: schemas.EnvironmentUpdate
) -> Response:
    # null leaves a field as it is, but the model (null: the server's default)
    changes = {
        k: v
        for k, v in body.model_dump(exclude_unset=True).items()
        if v is not None or k == "model"
    }
    if body.setup is not None:
        changes["setup"] = _setup(body.setup)
    environment = service.change_environment(account.id, environment_id, changes)
    return reply(environment.to_dict())


@router.delete("/environments/{environment_id}", response_model=schemas.Deleted, tags=["runs"])
def remove_environment(account: Me, service: ServiceDep, environment_id: str) -> Response:
    service.remove_environment(account.id, environment_id)
    return reply({"deleted": environment_id})


@router.post(
    "/runs", response_model=schemas.RunStarted, status_code=201, tags=["runs"], responses=CONFLICT
)
def start_run(account: Me, service: ServiceDep, body: schemas.RunCreate) -> Response:
    run, session = service.start_run(
        account.id,
        body.prompt,
        repo=body.repo,
        branch=body.branch,
        environment=body.environment,
        model=body.model,
        session_id=body.session_id,
    )
    return reply({"run": run.to_dict(), "session": session_json(session)}, 201)


@router.get("/runs", response_model=list[schemas.RunPublic], tags=["runs"])
def runs(
    account: Me,
    service: ServiceDep,
    session: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    """The caller's runs, newest first (of one session with `session`)."""
    return reply([r.to_dict() for r in service.runs(account.id, session_id=session, limit=limit)])


@router.get("/runs/{run_id}", response_model=schemas.RunPublic, tags=["runs"])
def run(account: Me, service: ServiceDep, run_id: str) -> Response:
    return reply(service.run(account.id, run_id).to_dict())


@router.post(
    "/runs/{run_id}/cancel", response_model=schemas.RunPublic, tags=["runs"], responses=CONFLICT
)
def cancel_run(account: Me, service: ServiceDep, run_id: str) -> Response:
    """Stop a run: a queued one at once; a preparing or running one within seconds (its
    `cancel_requested` is true until the worker has stopped it). 409 when it has ended."""
    return reply(service.cancel_run(account.id, run_id).to_dict())
