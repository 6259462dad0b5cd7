"""The SQL the two SQL stores share is written once with `?` placeholders: what each dialect
makes of it. The statements' effects are checked on the real databases by test_contract.py."""

from __future__ import annotations

from baton.store.sql.dialect import POSTGRES, SQLITE


def test_a_shared_statement_takes_each_drivers_placeholder() -> None:
    query = "SELECT 1 FROM sessions WHERE id = ? AND owner = ?"
    assert SQLITE.sql(query) == query
    assert POSTGRES.sql(query) == "SELECT 1 FROM sessions WHERE id = %s AND owner = %s"
    # A statement with a backend's own %s terms already in it keeps them.
    assert POSTGRES.sql("UPDATE t SET a = %s WHERE id = ?") == "UPDATE t SET a = %s WHERE id = %s"


def test_an_insert_can_skip_a_row_whose_key_is_there() -> None:
    assert (
        SQLITE.insert("logins", "id, account_id")
        == "INSERT INTO logins(id, account_id) VALUES (?,?)"
    )
    assert SQLITE.insert("share_blobs", "share_id, sha256", skip=True) == (
        "INSERT OR IGNORE INTO share_blobs(share_id, sha256) VALUES (?,?)"
    )
    assert POSTGRES.insert("share_blobs", "share_id, sha256", skip=True) == (
        "INSERT INTO share_blobs(share_id, sha256) VALUES (%s,%s) ON CONFLICT DO NOTHING"
    )


def test_a_list_of_values_is_one_array_or_bounded_batches() -> None:
    values = [f"m{i}" for i in range(1201)]
    batches = list(SQLITE.any_of("id", values))
    assert [len(args) for _, args in batches] == [500, 500, 201]
    assert batches[2][0] == "id IN (" + ",".join(["?"] * 201) + ")"
    assert [x for _, args in batches for x in args] == values
    assert list(POSTGRES.any_of("id", values)) == [("id = ANY(%s)", [values])]
    assert list(SQLITE.any_of("id", [])) == list(POSTGRES.any_of("id", [])) == []


def test_values_are_adapted_to_what_each_database_holds() -> None:
    assert SQLITE.text("a\x00b") == "a\x00b"
    assert POSTGRES.text("a\x00b") == "a\ufffdb"
    assert POSTGRES.text(None) is None
    assert SQLITE.flag(True) == 1 and type(SQLITE.flag(True)) is int
    assert POSTGRES.flag(True) is True
