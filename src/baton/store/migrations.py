"""Numbered, named schema migrations for the SQLite store, recorded in `migrations` (the
PostgreSQL store has the same steps in its dialect: pg_migrations.py; what a migration is:
migration.py)."""

from __future__ import annotations

import sqlite3

import orjson

from baton.core.validation import message_text
from baton.store.migration import Migration, fork_point, git_references, script

M001_INITIAL = """
CREATE TABLE accounts (
  id TEXT PRIMARY KEY,
  handle TEXT NOT NULL UNIQUE,
  display_name TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE messages (
  rowid INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  parent TEXT REFERENCES messages(id) DEFERRABLE INITIALLY DEFERRED,
  depth INTEGER NOT NULL,
  root TEXT NOT NULL,
  body BLOB NOT NULL,
  input_tokens INTEGER NOT NULL,
  output_tokens INTEGER NOT NULL,
  cache_read_tokens INTEGER NOT NULL,
  cache_write_tokens INTEGER NOT NULL,
  cost_usd REAL NOT NULL,
  findings BLOB,
  flagged TEXT
);
CREATE INDEX messages_root ON messages(root);
CREATE TABLE message_blobs (
  sha256 TEXT NOT NULL,
  message INTEGER NOT NULL REFERENCES messages(rowid) ON DELETE CASCADE,
  PRIMARY KEY (sha256, message)
) WITHOUT ROWID;
CREATE INDEX message_blobs_message ON message_blobs(message);
CREATE TABLE sessions (
  rowid INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  owner TEXT NOT NULL REFERENCES accounts(id),
  title TEXT NOT NULL,
  title_auto INTEGER NOT NULL,
  task TEXT NOT NULL,
  status TEXT NOT NULL,
  head TEXT REFERENCES messages(id) DEFERRABLE INITIALLY DEFERRED,
  root TEXT,
  message_count INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  version INTEGER NOT NULL,
  metadata BLOB NOT NULL,
  git BLOB,
  platform TEXT NOT NULL,
  forked_from BLOB,
  repo TEXT,
  input_tokens INTEGER NOT NULL,
  output_tokens INTEGER NOT NULL,
  cache_read_tokens INTEGER NOT NULL,
  cache_write_tokens INTEGER NOT NULL,
  cost_usd REAL NOT NULL
);
CREATE INDEX sessions_recent ON sessions(owner, updated_at DESC, id DESC);
CREATE INDEX sessions_root ON sessions(root);
CREATE TABLE shares (
  id TEXT PRIMARY KEY,
  session_id TEXT NOT NULL,
  owner TEXT NOT NULL,
  shared_by BLOB NOT NULL,
  head TEXT,
  root TEXT,
  message_count INTEGER NOT NULL,
  title TEXT NOT NULL,
  task TEXT NOT NULL,
  metadata BLOB NOT NULL,
  git BLOB,
  created_at TEXT NOT NULL,
  expires_at TEXT,
  revoked_at TEXT,
  redacted BLOB NOT NULL,
  input_tokens INTEGER NOT NULL,
  output_tokens INTEGER NOT NULL,
  cache_read_tokens INTEGER NOT NULL,
  cache_write_tokens INTEGER NOT NULL,
  cost_usd REAL NOT NULL
);
CREATE INDEX shares_owner ON shares(owner, created_at DESC);
CREATE INDEX shares_session ON shares(session_id);
CREATE INDEX shares_root ON shares(root)
"""

M002_SEARCH = """
CREATE VIRTUAL TABLE session_search USING fts5(title, task, tokenize='unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE message_search USING fts5(text, content='', tokenize='unicode61 remove_diacritics 2')
"""


def _m002(conn: sqlite3.Connection) -> None:
    script(M002_SEARCH)(conn)
    conn.execute(
        "INSERT INTO session_search(rowid, title, task) SELECT rowid, title, task FROM sessions"
    )
    rows = conn.execute("SELECT rowid, body FROM messages")
    conn.executemany(
        "INSERT INTO message_search(rowid, text) VALUES (?, ?)",
        ((rowid, message_text(orjson.loads(body)["parts"])) for rowid, body in rows),
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
CREATE INDEX tokens_account ON tokens(account_id, created_at);
"""

# The message at a depth of a family, found without walking the chain (see SQLiteStore._shortcut).
M004_DEPTH_INDEX = """
CREATE INDEX messages_root_depth ON messages(root, depth);
DROP INDEX messages_root
"""

# Who may reference a blob (issue 12): the blobs an account uploaded (blob_grants), and the
# git patches and bundles that sessions and shares name, as rows rather than a substring
# search over their JSON (session_blobs, share_blobs). And the answers to appends sent with an
# Idempotency-Key, kept 24 hours (idempotency_keys).
M005_BLOB_ACCESS = """
CREATE TABLE blob_grants (
  account TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (account, sha256)
) WITHOUT ROWID;
CREATE INDEX blob_grants_sha256 ON blob_grants(sha256);
CREATE TABLE session_blobs (
  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  sha256 TEXT NOT NULL,
  PRIMARY KEY (session_id, sha256)
) WITHOUT ROWID;
CREATE INDEX session_blobs_sha256 ON session_blobs(sha256);
CREATE TABLE share_blobs (
  share_id TEXT NOT NULL REFERENCES shares(id) ON DELETE CASCADE,
  sha256 TEXT NOT NULL,
  PRIMARY KEY (share_id, sha256)
) WITHOUT ROWID;
CREATE INDEX share_blobs_sha256 ON share_blobs(sha256);
CREATE TABLE idempotency_keys (
  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  request TEXT NOT NULL,
  status INTEGER NOT NULL,
  response BLOB NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (session_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at)
"""


def _m005(conn: sqlite3.Connection) -> None:
    script(M005_BLOB_ACCESS)(conn)
    sessions = git_references(conn.execute("SELECT id, git FROM sessions WHERE git IS NOT NULL"))
    conn.executemany("INSERT OR IGNORE INTO session_blobs VALUES (?, ?)", sessions)
    shares = git_references(conn.execute("SELECT id, git FROM shares WHERE git IS NOT NULL"))
    conn.executemany("INSERT OR IGNORE INTO share_blobs VALUES (?, ?)", shares)


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
ALTER TABLE sessions ADD COLUMN inherited_input_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN inherited_output_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN inherited_cache_read_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN inherited_cache_write_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN inherited_cost_usd REAL NOT NULL DEFAULT 0;
ALTER TABLE shares ADD COLUMN inherited_input_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE shares ADD COLUMN inherited_output_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE shares ADD COLUMN inherited_cache_read_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE shares ADD COLUMN inherited_cache_write_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE shares ADD COLUMN inherited_cost_usd REAL NOT NULL DEFAULT 0
"""


def _m007(conn: sqlite3.Connection) -> None:
    script(M007_INHERITED)(conn)
    forks = conn.execute("SELECT id, forked_from FROM sessions WHERE forked_from IS NOT NULL")
    points = [(sid, fork_point(origin)) for sid, origin in forks.fetchall()]
    for sid, point in points:
        if point is None:
            continue
        conn.execute(
            "UPDATE sessions SET inherited_input_tokens = m.input_tokens, "
            "inherited_output_tokens = m.output_tokens, "
            "inherited_cache_read_tokens = m.cache_read_tokens, "
            "inherited_cache_write_tokens = m.cache_write_tokens, "
            "inherited_cost_usd = m.cost_usd "
            "FROM messages m WHERE sessions.id = ? AND m.id = ?",
            (sid, point),
        )
    conn.execute(
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
  credentials BLOB,
  created_at TEXT NOT NULL,
  UNIQUE (owner, name)
);
CREATE TABLE environments (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  variables BLOB NOT NULL,
  secret_names BLOB NOT NULL,
  secrets BLOB,
  setup BLOB NOT NULL,
  network INTEGER NOT NULL,
  model TEXT,
  push INTEGER NOT NULL,
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
  times BLOB NOT NULL,
  error TEXT,
  worker TEXT,
  heartbeat_at TEXT,
  cancel_requested INTEGER NOT NULL,
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


# What imports leave for later (SQLiteStore.defers_scan): the search index and the secret
# scan of the messages they stored. A search indexes `unindexed` first; the first pass that
# reads findings (a share, a rescan) scans `unscanned` (service.findings.settle).
M010_IMPORT_LATER = """
CREATE TABLE unindexed (rowid INTEGER PRIMARY KEY REFERENCES messages(rowid) ON DELETE CASCADE);
CREATE TABLE unscanned (rowid INTEGER PRIMARY KEY REFERENCES messages(rowid) ON DELETE CASCADE)
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
    Migration(10, "m010_import_later", script(M010_IMPORT_LATER)),
]


def applied(conn: sqlite3.Connection) -> list[int]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS migrations ("
        "number INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    return [row[0] for row in conn.execute("SELECT number FROM migrations ORDER BY number")]


def pending(conn: sqlite3.Connection) -> list[Migration]:
    done = set(applied(conn))
    return [m for m in MIGRATIONS if m.number not in done]


def migrate(conn: sqlite3.Connection, upto: int | None = None) -> list[Migration]:
    """Apply every pending migration (each in its own transaction); return what ran."""
    ran = []
    for migration in pending(conn):
        if upto is not None and migration.number > upto:
            break
        conn.execute("BEGIN IMMEDIATE")
        try:
            if migration.number in set(applied(conn)):  # another process got there first
                conn.execute("ROLLBACK")
                continue
            migration.apply(conn)
            conn.execute(
                "INSERT INTO migrations(number, name, applied_at) "
                "VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
                (migration.number, migration.name),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        ran.append(migration)
    return ran
