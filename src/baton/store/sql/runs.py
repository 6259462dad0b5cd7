"""The SQL stores' server runs (core.runs), written once for SQLite and PostgreSQL: rows of
repositories, environments and runs to values and back, one active run per session (held by
the partial unique index `runs_one_active`), compare-and-set on a run's state, and claiming
the oldest queued run (PostgreSQL skips rows another worker has locked)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import orjson

from baton.core.errors import Conflict, NotFound
from baton.core.runs import PREPARING, QUEUED, Environment, Repo, Run
from baton.store.sql.common import C, SQLStore
from baton.store.sql.rows import load

REPO_COLUMNS = "id, owner, name, url, created_at, default_branch, credentials"
ENVIRONMENT_COLUMNS = (
    "id, owner, name, created_at, updated_at, variables, secret_names, secrets, setup, "
    "network, model, push"
)
RUN_COLUMNS = (
    "id, owner, session_id, repo_id, environment_id, branch, prompt, state, created_at, "
    "updated_at, model, times, error, worker, heartbeat_at, cancel_requested, workspace"
)
_BUSY = ("preparing", "running")


class _Duplicate(Exception):
    """An insert met a unique index."""


def _blob(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def repo_from(row: Sequence[Any]) -> Repo:
    return Repo(
        id=row[0],
        owner=row[1],
        name=row[2],
        url=row[3],
        created_at=row[4],
        default_branch=row[5],
        credentials=_blob(row[6]),
    )


def environment_from(row: Sequence[Any]) -> Environment:
    return Environment(
        id=row[0],
        owner=row[1],
        name=row[2],
        created_at=row[3],
        updated_at=row[4],
        variables=orjson.loads(row[5]),
        secret_names=tuple(orjson.loads(row[6])),
        secrets=_blob(row[7]),
        setup=tuple(orjson.loads(row[8])),
        network=bool(row[9]),
        model=row[10],
        push=bool(row[11]),
    )


def run_from(row: Sequence[Any]) -> Run:
    return Run(
        id=row[0],
        owner=row[1],
        session_id=row[2],
        repo_id=row[3],
        environment_id=row[4],
        branch=row[5],
        prompt=row[6],
        state=row[7],
        created_at=row[8],
        updated_at=row[9],
        model=row[10],
        times=load(row[11]) or {},
        error=row[12],
        worker=row[13],
        heartbeat_at=row[14],
        cancel_requested=bool(row[15]),
        workspace=row[16],
    )


class RunsSQLStore(SQLStore[C]):
    """A SQL store with the runs tables of migration m008."""

    # what follows the SELECT of the queued run a worker claims
    _claim_lock: ClassVar[str] = ""

    def _violation(self, exc: Exception) -> str | None:
        """ "unique" or "missing" when `exc` is the backend's error for a duplicate key or a
        missing referenced row; None for anything else."""
        return None

    def _insert(self, table: str, columns: str, values: tuple[Any, ...], what: str) -> None:
        def work(c: C) -> None:
            try:
                c.execute(self.dialect.insert(table, columns), values)
            except Exception as exc:
                kind = self._violation(exc)
                if kind == "unique":
                    raise Conflict(f"{what} exists already", None) from exc
                if kind == "missing":
                    raise NotFound(f"{what} refers to something that is not stored") from exc
                raise

        self._writing(work)

    def _one(self, table: str, columns: str, key: str) -> Any:
        return self._reading(
            lambda c: c.execute(
                self._sql(f"SELECT {columns} FROM {table} WHERE id = ?"), (key,)
            ).fetchone()
        )

    def _delete(self, table: str, key: str) -> bool:
        return self._writing(
            lambda c: (
                c.execute(self._sql(f"DELETE FROM {table} WHERE id = ?"), (key,)).rowcount == 1
            )
        )

    def _of(self, table: str, columns: str, owner: str) -> list[Any]:
        return self._reading(
            lambda c: c.execute(
                self._sql(f"SELECT {columns} FROM {table} WHERE owner = ? ORDER BY name, id"),
                (owner,),
            ).fetchall()
        )

    # repositories
    def add_repo(self, repo: Repo) -> None:
        values = (
            repo.id,
            repo.owner,
            self.dialect.text(repo.name),
            self.dialect.text(repo.url),
            repo.created_at,
            repo.default_branch,
            repo.credentials,
        )
        self._insert("repos", REPO_COLUMNS, values, f"a repository named {repo.name!r}")

    def get_repo(self, repo_id: str) -> Repo | None:
        row = self._one("repos", REPO_COLUMNS, repo_id)
        return repo_from(row) if row else None

    def list_repos(self, owner: str) -> list[Repo]:
        return [repo_from(r) for r in self._of("repos", REPO_COLUMNS, owner)]

    def delete_repo(self, repo_id: str) -> bool:
        return self._delete("repos", repo_id)

    # environments
    def _environment_values(self, e: Environment) -> tuple[Any, ...]:
        d = self.dialect
        return (
            e.id,
            e.owner,
            d.text(e.name),
            e.created_at,
            e.updated_at,
            orjson.dumps(e.variables),
            orjson.dumps(list(e.secret_names)),
            e.secrets,
            orjson.dumps(list(e.setup)),
            d.flag(e.network),
            e.model,
            d.flag(e.push),
        )

    def add_environment(self, environment: Environment) -> None:
        self._insert(
            "environments",
            ENVIRONMENT_COLUMNS,
            self._environment_values(environment),
            f"an environment named {environment.name!r}",
        )

    def get_environment(self, environment_id: str) -> Environment | None:
        row = self._one("environments", ENVIRONMENT_COLUMNS, environment_id)
        return environment_from(row) if row else None

    def list_environments(self, owner: str) -> list[Environment]:
        return [environment_from(r) for r in self._of("environments", ENVIRONMENT_COLUMNS, owner)]

    def put_environment(self, environment: Environment) -> None:
        values = self._environment_values(environment)
        sets = ", ".join(f"{col.strip()} = ?" for col in ENVIRONMENT_COLUMNS.split(",")[1:])

        def work(c: C) -> None:
            try:
                done = c.execute(
                    self._sql(f"UPDATE environments SET {sets} WHERE id = ?"),
                    (*values[1:], environment.id),
                )
            except Exception as exc:
                if self._violation(exc) == "unique":
                    raise Conflict(
                        f"an environment named {environment.name!r} exists already", None
                    ) from exc
                raise
            if done.rowcount == 0:
                raise NotFound(f"no environment {environment.id}")

        self._writing(work)

    def delete_environment(self, environment_id: str) -> bool:
        return self._delete("environments", environment_id)

    # runs
    def _run_values(self, r: Run) -> tuple[Any, ...]:
        d = self.dialect
        return (
            r.id,
            r.owner,
            r.session_id,
            r.repo_id,
            r.environment_id,
            d.text(r.branch),
            d.text(r.prompt),
            r.state,
            r.created_at,
            r.updated_at,
            r.model,
            orjson.dumps(r.times),
            d.text(r.error),
            r.worker,
            r.heartbeat_at,
            d.flag(r.cancel_requested),
            r.workspace,
        )

    def add_run(self, run: Run) -> None:
        def work(c: C) -> None:
            try:
                c.execute(self.dialect.insert("runs", RUN_COLUMNS), self._run_values(run))
            except Exception as exc:
                kind = self._violation(exc)
                if kind == "unique":
                    raise _Duplicate from exc
                if kind == "missing":
                    raise NotFound(f"no session {run.session_id}") from exc
                raise

        try:
            self._writing(work)
        except _Duplicate as exc:
            # looked at after the failed transaction (PostgreSQL's reads nothing more)
            active = [r for r in self.list_runs(session_id=run.session_id, limit=5) if r.active]
            if not active:
                raise Conflict(f"run {run.id} exists already", None) from exc
            raise Conflict(
                f"session {run.session_id} has a run in progress ({active[0].id}): "
                "wait for it or stop it",
                None,
            ) from exc

    def get_run(self, run_id: str) -> Run | None:
        row = self._one("runs", RUN_COLUMNS, run_id)
        return run_from(row) if row else None

    def list_runs(
        self, owner: str | None = None, session_id: str | None = None, limit: int = 50
    ) -> list[Run]:
        where, args = [], list[Any]()
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if session_id is not None:
            where.append("session_id = ?")
            args.append(session_id)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        query = self._sql(
            f"SELECT {RUN_COLUMNS} FROM runs {clause}ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        rows = self._reading(lambda c: c.execute(query, (*args, limit)).fetchall())
        return [run_from(r) for r in rows]

    def active_runs(self, owner: str) -> list[Run]:
        rows = self._reading(
            lambda c: c.execute(
                self._sql(
                    f"SELECT {RUN_COLUMNS} FROM runs WHERE owner = ? AND state IN (?, ?, ?) "
                    "ORDER BY created_at, id"
                ),
                (owner, QUEUED, *_BUSY),
            ).fetchall()
        )
        return [run_from(r) for r in rows]

    def put_run(self, run: Run, expect_states: Sequence[str] | None = None) -> bool:
        values = self._run_values(run)
        sets = ", ".join(
            f"{col} = cancel_requested OR ?" if col == "cancel_requested" else f"{col} = ?"
            for col in (c.strip() for c in RUN_COLUMNS.split(",")[1:])
        )
        query = f"UPDATE runs SET {sets} WHERE id = ?"
        args: list[Any] = [*values[1:], run.id]
        if expect_states is not None:
            if not expect_states:
                return False
            query += f" AND state IN ({', '.join('?' * len(expect_states))})"
            args.extend(expect_states)
        return self._writing(lambda c: c.execute(self._sql(query), args).rowcount == 1)

    def claim_run(self, worker: str, now: str) -> Run | None:
        def work(c: C) -> Run | None:
            row = c.execute(
                self._sql(
                    f"SELECT {RUN_COLUMNS} FROM runs WHERE state = ? "
                    f"ORDER BY created_at, id LIMIT 1{self._claim_lock}"
                ),
                (QUEUED,),
            ).fetchone()
            if row is None:
                return None
            run = run_from(row).moved(PREPARING, now, worker=worker, heartbeat_at=now)
            values = self._run_values(run)
            sets = ", ".join(f"{col.strip()} = ?" for col in RUN_COLUMNS.split(",")[1:])
            done = c.execute(
                self._sql(f"UPDATE runs SET {sets} WHERE id = ? AND state = ?"),
                (*values[1:], run.id, QUEUED),
            )
            return run if done.rowcount == 1 else None

        return self._writing(work)

    def stale_runs(self, before: str) -> list[Run]:
        rows = self._reading(
            lambda c: c.execute(
                self._sql(
                    f"SELECT {RUN_COLUMNS} FROM runs WHERE state IN (?, ?) "
                    "AND COALESCE(heartbeat_at, updated_at) < ? ORDER BY created_at, id"
                ),
                (*_BUSY, before),
            ).fetchall()
        )
        return [run_from(r) for r in rows]

    def waiting_runs(self, before: str) -> list[Run]:
        rows = self._reading(
            lambda c: c.execute(
                self._sql(
                    f"SELECT {RUN_COLUMNS} FROM runs WHERE state = ? AND created_at < ? "
                    "ORDER BY created_at, id"
                ),
                (QUEUED, before),
            ).fetchall()
        )
        return [run_from(r) for r in rows]
