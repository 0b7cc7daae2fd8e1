"""The stage pipeline over a real migrated database: DNC probes, order, short-circuits, holds."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from rotor_lite.services.guardrail_stages import Policy, screen_payloads
from rotor_lite.store import guardrails as store
from rotor_lite.store.db import connect, migrate
from rotor_lite.store.guardrails import ConfigRow, PolicyReader, open_sqlite_reader


@pytest.fixture
def reader(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[PolicyReader]:
    """The policy reader of the run's backend, on a database holding two workspaces' do-not-contact lists."""
    url = request.getfixturevalue("pg_cluster").new_database() if backend == "postgres" else None
    conn: Any
    if url is not None:
        from rotor_lite.store.pg import PgConnection

        conn = PgConnection.open(url)
        conn.migrate()
    else:
        conn = connect(tmp_path / "rotor.db", "NORMAL")
        migrate(conn)
    conn.execute("BEGIN")
    store.append_dnc(conn, "emails", "ws_a", ["alice@example.com", "bob@example.com"])
    store.append_dnc(conn, "domains", "ws_a", ["bounced.io"])
    store.append_dnc(conn, "emails", "ws_b", ["carol@example.com"])
    conn.execute("COMMIT")
    conn.close()
    if url is not None:
        from rotor_lite.store.pg import BlockingPgConnection

        policy_reader = PolicyReader(BlockingPgConnection(url))
    else:
        policy_reader = PolicyReader(open_sqlite_reader(tmp_path / "rotor.db"))
    yield policy_reader
    policy_reader.close()


def _policy(reader: PolicyReader, workspace: str = "ws_a", **config: object) -> Policy:
    return Policy(ConfigRow(workspace_id=workspace, id="grc_x", **config), reader.has_dnc(workspace))  # type: ignore[arg-type]


def _screen(policy: Policy, reader: PolicyReader, *payloads: object, workspace: str = "ws_a") -> list:
    calls: list[tuple[str, int]] = []

    def probe(kind: str, values: object) -> set[str]:
        calls.append((kind, len(values)))  # type: ignore[arg-type]
        return reader.dnc_hits(kind, workspace, values)  # type: ignore[arg-type]

    verdicts = screen_payloads(policy, [msgspec.json.encode(p) for p in payloads], probe)
    assert len(calls) <= 2  # one probe per list for the whole batch
    return verdicts


def test_dnc_emails_and_domains_per_workspace(reader: PolicyReader) -> None:
    verdicts = _screen(_policy(reader), reader, {"to": "Bob@Example.com"}, {"to": "x@mail.bounced.io"},
                       {"to": "carol@example.com"}, {"n": 1})
    assert [(v.blocked_by, v.reason) for v in verdicts] == [
        ("dnc", "Email address matched DNC list"), ("dnc", "Email domain matched DNC list: bounced.io"),
        (None, None), (None, None),
    ]
    [other] = _screen(_policy(reader, "ws_b"), reader, {"to": "carol@example.com"}, workspace="ws_b")
    assert other.blocked_by == "dnc"


def test_stages_run_in_order_and_short_circuit(reader: PolicyReader) -> None:
    policy = _policy(reader, competitor_domains=("rivalcrm.com",), pii_enabled=True, pii_mode="block",
                     brand_tone_enabled=True, brand_tone_rubric="calm")
    both = {"to": "alice@example.com", "body": "rivalcrm.com 555-867-5309"}
    competitor_and_pii = {"body": "rivalcrm.com 555-867-5309"}
    verdicts = _screen(policy, reader, both, competitor_and_pii, {"body": "555-867-5309"}, {"body": "hello"})
    assert [v.blocked_by for v in verdicts] == ["dnc", "competitor", "pii", None]
    assert [v.hold for v in verdicts] == [False, False, False, True]


def test_redact_mode_rewrites_the_payload_and_an_inactive_policy_does_nothing(reader: PolicyReader) -> None:
    [verdict] = _screen(_policy(reader, pii_enabled=True), reader, {"body": "call 555-867-5309"})
    assert verdict.blocked_by is None and msgspec.json.decode(verdict.payload) == {"body": "call [REDACTED-PHONE]"}
    idle = _policy(reader, "ws_none")
    assert idle.inactive
    payload = msgspec.json.encode({"to": "alice@example.com"})
    assert screen_payloads(idle, [payload], lambda kind, values: pytest.fail("probed"))[0].payload is payload


def test_a_million_entries_cost_a_lookup(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "big.db", isolation_level=None)
    migrate(conn)
    conn.execute("BEGIN")
    store.append_dnc(conn, "emails", "ws", (f"user{i}@example.com" for i in range(200_000)))
    conn.execute("COMMIT")
    conn.close()
    reader = PolicyReader(open_sqlite_reader(tmp_path / "big.db"))
    try:
        assert reader.dnc_hits("emails", "ws", ["user199999@example.com", "nobody@example.com"]) == {"user199999@example.com"}
        plan = " ".join(str(r) for r in reader._conn.execute(
            "EXPLAIN QUERY PLAN SELECT d.email FROM json_each(?) AS v CROSS JOIN dnc_email AS d"
            " ON d.workspace_id = ? AND d.email = v.value", ('["a", "b"]', "ws"),
        ))
        assert "SEARCH d USING PRIMARY KEY" in plan and "SCAN d" not in plan
        assert reader.dnc_hits("emails", "ws", []) == set()
    finally:
        reader.close()


def test_blocked_counts_add_up_per_day_and_stage(conn: Any) -> None:
    """The upsert names its table's column (PostgreSQL would find `blocked` ambiguous with the excluded row's)."""
    for stage in ("dnc", "dnc", "pii"):
        store.count_block(conn, "ws_a", "2026-12-05", stage)
    rows = conn.execute("SELECT stage, blocked FROM guardrail_block ORDER BY stage").fetchall()
    assert [(row[0], row[1]) for row in rows] == [("dnc", 2), ("pii", 1)]
