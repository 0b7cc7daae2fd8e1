"""The outbox's store operations on the run's backend; on PostgreSQL, what several nodes taking at once need."""

from __future__ import annotations

from typing import Any

import pytest

from rotor_lite.store import outbox
from rotor_lite.store.contract import is_postgres


def _event(n: int) -> outbox.OutboxEvent:
    return outbox.OutboxEvent(id=f"evt_{n}", workspace_id="ws", event_type="job.completed", data=b"{}", target=None,
                              created_at=n)


def _delivery(n: int) -> outbox.DeliveryRow:
    return outbox.DeliveryRow(id=f"msg_{n}", workspace_id="ws", channel="webhook", webhook_id=None,
                              event_type="job.completed", body=b"{}", next_attempt_at=100, created_at=n)


def test_take_events_takes_the_oldest_up_to_the_limit_once(conn: Any) -> None:
    for n in range(3):
        outbox.append_event(conn, _event(n))
    assert [e.id for e in outbox.take_events(conn, 2)] == ["evt_0", "evt_1"]
    assert [e.id for e in outbox.take_events(conn, 2)] == ["evt_2"]
    assert outbox.take_events(conn, 2) == []


def test_a_claimed_delivery_is_not_due_to_another_node_until_its_lease_ends(conn: Any) -> None:
    if not is_postgres(conn):
        pytest.skip("one node alone on SQLite: deliveries are not claimed")
    outbox.insert_deliveries(conn, [_delivery(n) for n in range(2)])
    rowids = [row[0] for row in conn.execute("SELECT rowid FROM delivery ORDER BY rowid").fetchall()]
    assert outbox.claim_deliveries(conn, rowids, now=200, lease_until=5000) == set(rowids)
    assert outbox.claim_deliveries(conn, rowids, now=300, lease_until=5000) == set()  # another node: none left
    assert outbox.claim_deliveries(conn, rowids, now=5000, lease_until=9000) == set(rowids)  # the first node died
