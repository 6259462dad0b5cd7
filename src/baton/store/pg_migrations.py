"""The PostgreSQL store's migrations: the same numbered, named steps as SQLite's
(migrations.py), in PostgreSQL's dialect, recorded in `migrations`. Every server runs them
under one advisory lock, so servers starting side by side apply each step once."""

from __future__ import annotations

from typing import Any

import psycopg

from baton.store.migration import Migration, fork_point, git_references, script

MIGRATION_LOCK = 7_316_061_001  # pg_advisory_lock key: one migrator at a time


M001_INITIAL = """
CREATE TABLE accounts (
  id TEXT PRIMARY KEY,
  handle TEXT NOT NULL UNIQUE,
  display_name TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE messages (
  id TEXT PRIMARY KEY,
  parent TEXT REFERENCES messages(id) DEFERRABLE INITIALLY DEFERRED,
  depth INTEGER NOT NULL,
  root TEXT NOT NULL,
  body BYTEA NOT NULL,
  input_tokens BIGINT NOT NULL,
  output_tokens BIGINT NOT NULL,
  cache_read_tokens BIGINT NOT NULL,
  cache_write_tokens BIGINT NOT NULL,
  cost_usd DOUBLE PRECISION NOT NULL,
  findings BYTEA,
  flagged TEXT
);
CREATE INDEX messages_root ON messages(root);
CREATE INDEX messages_parent ON messages(parent);
CREATE TABLE message_blobs (
  sha256 TEXT NOT NULL,
  message TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  PRIMARY KEY (sha256, message)
);
CREATE INDEX message_blobs_message ON message_blobs(message);
CREATE TABLE sessions (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL REFERENCES accounts(id),
  title TEXT NOT NULL,
  title_auto BOOLEAN NOT NULL,
  task TEXT NOT NULL,
  status TEXT NOT NULL,
  head TEXT REFERENCES messages(id) DEFERRABLE INITIALLY DEFERRED,
  root TEXT,
  message_count INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  version BIGINT NOT NULL,
  metadata BYTEA NOT NULL,
  git BYTEA,
  platform TEXT NOT NULL,
  forked_from BYTEA,
  repo TEXT,
  input_tokens BIGINT NOT NULL,
  output_tokens BIGINT NOT NULL,
  cache_read_tokens BIGINT NOT NULL,
  cache_write_tokens BIGINT NOT NULL,
  cost_usd DOUBLE PRECISION NOT NULL,
  seq BIGSERIAL
);
CREATE INDEX sessions_recent ON sessions(owner, updated_at DESC, id DESC);
CREATE INDEX sessions_root ON sessions(root);
CREATE TABLE shares (
  id TEXT PRIMARY KEY,
  session_id TEXT NOT NULL,
  owner TEXT NOT NULL,
  shared_by BYTEA NOT NULL,
  head TEXT,
  root TEXT,
  message_count INTEGER NOT NULL,
  title TEXT NOT NULL,
  task TEXT NOT NULL,
  metadata BYTEA NOT NULL,
  git BYTEA,
  created_at TEXT NOT NULL,
  expires_at TEXT,
  revoked_at TEXT,
  redacted BYTEA NOT NULL,
  input_tokens BIGINT NOT NULL,
  output_tokens BIGINT NOT NULL,
  cache_read_tokens BIGINT NOT NULL,
  cache_write_tokens BIGINT NOT NULL,
  cost_usd DOUBLE PRECISION NOT NULL
);
CREATE INDEX shares_owner ON shares(owner, created_at DESC);
CREATE INDEX shares_session ON shares(session_id);
CREATE INDEX shares_root ON shares(root)
"""

# PostgreSQL's own full-text search: a stripped tsvector per message (the 'simple'
# configuration: no stemming, like SQLite's unicode61), and an expression index over the
# title and task of sessions.
M002_SEARCH = """
ALTER TABLE messages ADD COLUMN search TSVECTOR;
CREATE INDEX messages_search ON messages USING GIN (search);
CREATE INDEX sessions_search ON sessions
  USING GIN (to_tsvector('simple'::regconfig, title || ' ' || task))
"""


def _m002(cur: psycopg.Cursor[Any]) -> None:
    script(M002_SEARCH)(cur)
    import orjson

    from baton.core.validation import message_text

    rows = cur.execute("SELECT id, body FROM messages").fetchall()
    for mid, body in rows:
        cur.execute(
            "UPDATE messages SET search = " + SEARCH_VECTOR + " WHERE id = %s",
            (search_text(message_text(orjson.loads(body)["parts"])), mid),
        )


M003_AUTH = """
ALTER TABLE accounts ADD COLUMN password_hash TEXT;
CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  expires_at TEXT,
  revoked_at TEXT,
  last_used_at TEXT
);
CREATE INDEX tokens_account ON tokens(account_id, created_at)
"""

# A page of a chain is one index range: the family's messages between two depths.
M004_DEPTH_INDEX = """
CREATE INDEX messages_root_depth ON messages(root, depth);
DROP INDEX messages_root
"""

# Who may reference a blob, git snapshots' blobs as rows, and idempotency keys (see
# migrations.M005_BLOB_ACCESS).
M005_BLOB_ACCESS = """
CREATE TABLE blob_grants (
  account TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (account, sha256)
);
CREATE INDEX blob_grants_sha256 ON blob_grants(sha256);
CREATE TABLE session_blobs (
  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  sha256 TEXT NOT NULL,
  PRIMARY KEY (session_id, sha256)
);
CREATE INDEX session_blobs_sha256 ON session_blobs(sha256);
CREATE TABLE share_blobs (
  share_id TEXT NOT NULL REFERENCES shares(id) ON DELETE CASCADE,
  sha256 TEXT NOT NULL,
  PRIMARY KEY (share_id, sha256)
);
CREATE INDEX share_blobs_sha256 ON share_blobs(sha256);
CREATE TABLE idempotency_keys (
  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  request TEXT NOT NULL,
  status INTEGER NOT NULL,
  response BYTEA NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (session_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at)
"""


def _m005(cur: psycopg.Cursor[Any]) -> None:
    script(M005_BLOB_ACCESS)(cur)
    for table, source in (("session_blobs", "sessions"), ("share_blobs", "shares")):
        rows = cur.execute(f"SELECT id, git FROM {source} WHERE git IS NOT NULL").fetchall()
        found = git_references(rows)
        if found:
            cur.executemany(f"INSERT INTO {table} VALUES (%s, %s) ON CONFLICT DO NOTHING", found)


# Web logins kept on the server, so that logout, a password change or revoking a token ends
# them (the cookie names a row by the SHA-256 of its secret).
M006_LOGINS = """
CREATE TABLE logins (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  token_id TEXT REFERENCES tokens(id) ON DELETE CASCADE,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL
);
CREATE INDEX logins_account ON logins(account_id, expires_at);
CREATE INDEX logins_token ON logins(token_id)
"""


# What a fork inherited: the chain's totals at its fork point, so that a session's own usage
# (totals less inherited) starts at zero and a sum over sessions counts each message once.
# Existing forks take the totals of their fork point's message; a share, its session's.
M007_INHERITED = """
ALTER TABLE sessions ADD COLUMN inherited_input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN inherited_output_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN inherited_cache_read_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN inherited_cache_write_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN inherited_cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE shares ADD COLUMN inherited_input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE shares ADD COLUMN inherited_output_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE shares ADD COLUMN inherited_cache_read_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE shares ADD COLUMN inherited_cache_write_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE shares ADD COLUMN inherited_cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0
"""


def _m007(cur: psycopg.Cursor[Any]) -> None:
    script(M007_INHERITED)(cur)
    forks = cur.execute("SELECT id, forked_from FROM sessions WHERE forked_from IS NOT NULL")
    points = [(sid, fork_point(origin)) for sid, origin in forks.fetchall()]
    for sid, point in points:
        if point is None:
            continue
        cur.execute(
            "UPDATE sessions SET inherited_input_tokens = m.input_tokens, "
            "inherited_output_tokens = m.output_tokens, "
            "inherited_cache_read_tokens = m.cache_read_tokens, "
            "inherited_cache_write_tokens = m.cache_write_tokens, "
            "inherited_cost_usd = m.cost_usd "
            "FROM messages m WHERE sessions.id = %s AND m.id = %s",
            (sid, point),
        )
    cur.execute(
        "UPDATE shares SET inherited_input_tokens = s.inherited_input_tokens, "
        "inherited_output_tokens = s.inherited_output_tokens, "
        "inherited_cache_read_tokens = s.inherited_cache_read_tokens, "
        "inherited_cache_write_tokens = s.inherited_cache_write_tokens, "
        "inherited_cost_usd = s.inherited_cost_usd "
        "FROM sessions s WHERE s.id = shares.session_id AND s.forked_from IS NOT NULL"
    )


# Server runs (issue 15): repositories the server clones, environments (variables, encrypted
# secrets, setup commands), and runs of the agent on a session. One active run per session
# is held by a partial unique index, so two servers cannot both start one.
M008_RUNS = """
CREATE TABLE repos (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  url TEXT NOT NULL,
  default_branch TEXT,
  credentials BYTEA,
  created_at TEXT NOT NULL,
  UNIQUE (owner, name)
);
CREATE TABLE environments (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  variables BYTEA NOT NULL,
  secret_names BYTEA NOT NULL,
  secrets BYTEA,
  setup BYTEA NOT NULL,
  network BOOLEAN NOT NULL,
  model TEXT,
  push BOOLEAN NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (owner, name)
);
CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  repo_id TEXT,
  environment_id TEXT,
  branch TEXT,
  prompt TEXT NOT NULL,
  model TEXT,
  state TEXT NOT NULL,
  times BYTEA NOT NULL,
  error TEXT,
  worker TEXT,
  heartbeat_at TEXT,
  cancel_requested BOOLEAN NOT NULL,
  workspace TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX runs_one_active ON runs(session_id)
  WHERE state IN ('queued', 'preparing', 'running');
CREATE INDEX runs_session ON runs(session_id, created_at);
CREATE INDEX runs_owner ON runs(owner, created_at);
CREATE INDEX runs_queued ON runs(created_at) WHERE state = 'queued'
"""


# The secret scan's rules version (scanning.RULES_VERSION) that every stored message was
# scanned with, at least. Messages stored before it was kept were scanned by version 1 (which
# did not read attached files); a database without messages starts at version 2, the rules
# when this migration was written. A pass rescans older messages once (service.rescan).
M009_SCAN_RULES = """
CREATE TABLE scan_rules (version INTEGER NOT NULL);
INSERT INTO scan_rules(version)
  SELECT CASE WHEN EXISTS (SELECT 1 FROM messages) THEN 1 ELSE 2 END
"""


MIGRATIONS: list[Migration] = [
    Migration(1, "m001_initial", script(M001_INITIAL)),
    Migration(2, "m002_search", _m002),
    Migration(3, "m003_auth", script(M003_AUTH)),
    Migration(4, "m004_depth_index", script(M004_DEPTH_INDEX)),
    Migration(5, "m005_blob_access", _m005),
    Migration(6, "m006_logins", script(M006_LOGINS)),
    Migration(7, "m007_inherited", _m007),
    Migration(8, "m008_runs", script(M008_RUNS)),
    Migration(9, "m009_scan_rules", script(M009_SCAN_RULES)),
    # SQLite's m010 keeps what its imports leave for later (their messages' search index and
    # secret scan); PostgreSQL indexes and scans on the way in, so here the step is empty:
    # the two stores keep the same steps.
    Migration(10, "m010_import_later", script("")),
]

# The indexed text of a message: its first SEARCH_CHARS characters (a tsvector holds at most
# 1 MB; a long tool output is found by its beginning), without NUL (not valid in text).
SEARCH_CHARS = 200_000
SEARCH_VECTOR = "strip(to_tsvector('simple'::regconfig, %s))"


def search_text(text: str) -> str:
    return text[:SEARCH_CHARS].replace("\x00", " ")


def applied(cur: psycopg.Cursor[Any]) -> list[int]:
    """Numbers of the applied migrations; reads only (an empty database has none)."""
    exists = cur.execute("SELECT to_regclass('migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return []
    return [row[0] for row in cur.execute("SELECT number FROM migrations ORDER BY number")]


def pending(cur: psycopg.Cursor[Any]) -> list[Migration]:
    done = set(applied(cur))
    return [m for m in MIGRATIONS if m.number not in done]


def migrate(conn: psycopg.Connection[Any], upto: int | None = None) -> list[Migration]:
    """Apply every pending migration, each in its own transaction, under the advisory lock."""
    ran: list[Migration] = []
    with conn.cursor() as cur:
        if not pending(cur):  # the common case, every start: one read, no lock, no DDL
            return ran
        cur.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS migrations ("
                "number INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            for migration in pending(cur):
                if upto is not None and migration.number > upto:
                    break
                with conn.transaction():
                    migration.apply(cur)
                    cur.execute(
                        "INSERT INTO migrations(number, name, applied_at) VALUES "
                        "(%s, %s, to_char(now() AT TIME ZONE 'UTC', "
                        '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\'))',
                        (migration.number, migration.name),
                    )
                ran.append(migration)
        finally:
            cur.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return ran
