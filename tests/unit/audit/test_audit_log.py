"""Audit: how API calls are named, and the CSV export: streamed in batches, safe for spreadsheets."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from rotor_lite.api.audit import describe
from rotor_lite.services import audit
from rotor_lite.store import audit as audit_store
from rotor_lite.store.audit import AuditFilter, AuditRow
from tests.notify_helpers import notify_env


@pytest.mark.parametrize(("method", "template", "params", "expected"), [
    ("POST", "/v1/queues", {}, ("queue.created", "queue", None)),
    ("PATCH", "/v1/queues/{name:str}", {"name": "q"}, ("queue.updated", "queue", "q")),
    ("DELETE", "/v1/queues/{name:str}", {"name": "q"}, ("queue.deleted", "queue", "q")),
    ("POST", "/v1/queues/{name:str}/pause", {"name": "q"}, ("queue.paused", "queue", "q")),
    ("POST", "/v1/queues/{name:str}/retry-all", {"name": "q"}, ("queue.retried_all", "queue", "q")),
    ("DELETE", "/v1/queues/{name:str}/jobs/{job_id:str}", {"name": "q", "job_id": "j"}, ("job.cancelled", "job", "j")),
    ("POST", "/v1/queues/{name:str}/jobs/{job_id:str}/retry", {"name": "q", "job_id": "j"}, ("job.retried", "job", "j")),
    ("POST", "/v1/dlq/replay", {}, ("job.retried", "queue", None)),
    ("POST", "/v1/schedules/{id:str}/fire-now", {"id": "s"}, ("schedule.fired", "schedule", "s")),
    ("POST", "/v1/approvals/{id:str}/approve", {"id": "a"}, ("approval.approved", "approval", "a")),
    ("POST", "/v1/api-keys", {}, ("api_key.created", "api_key", None)),
    ("DELETE", "/v1/api-keys/{id:str}", {"id": "k"}, ("api_key.revoked", "api_key", "k")),
    ("POST", "/v1/api-keys/{id:str}/rotate", {"id": "k"}, ("api_key.rotated", "api_key", "k")),
    ("PATCH", "/v1/guardrails", {}, ("guardrail.updated", "guardrail", None)),
    ("POST", "/v1/guardrails/dnc", {}, ("guardrail.dnc_added", "guardrail", None)),
    ("POST", "/v1/webhooks/{webhook_id:str}/test", {"webhook_id": "w"}, ("webhook.tested", "webhook", "w")),
    ("DELETE", "/v1/webhooks/{webhook_id:str}", {"webhook_id": "w"}, ("webhook.deleted", "webhook", "w")),
    ("PUT", "/v1/alerts", {}, ("alert.updated", "alert", None)),
    ("POST", "/v1/functions", {}, ("function.created", "function", None)),
    ("POST", "/v1/runs/{run_id:str}/cancel", {"run_id": "r"}, ("run.cancelled", "run", "r")),
    ("POST", "/v1/runs/{run_id:str}/replay", {"run_id": "r"}, ("run.retried", "run", "r")),
    ("POST", "/v1/signals/{signal_id:str}/complete", {"signal_id": "s"}, ("signal.completed", "signal", "s")),
])
def test_calls_are_named_after_their_route(
    method: str, template: str, params: dict[str, str], expected: tuple[str, str, str | None]
) -> None:
    assert describe(method, template, params) == expected


@pytest.mark.parametrize(("method", "template"), [
    ("GET", "/v1/queues"), ("POST", "/v1/queues/{name:str}/jobs"), ("POST", "/v1/queues/{name:str}/jobs/batch"),
    ("POST", "/v1/schedules/preview"), ("POST", "/healthz"),
])
def test_reads_and_the_data_plane_are_not_audited(method: str, template: str) -> None:
    assert describe(method, template, {"name": "q"}) is None


async def test_csv_streams_in_batches_oldest_first(tmp_path: Path) -> None:
    async with notify_env(tmp_path) as env:
        ws = env.principal.workspace_id
        rows = [audit.audit_event(ws, "queue.created", actor="key_a", now=1_000 + i, resource_type="queue",
                                  resource_id=f"q{i}", metadata={"i": i}, ip="10.0.0.1") for i in range(2_500)]
        await audit.record_now(env.core, *rows)
        batches = [len(b) async for b in audit_store.stream(env.core.db, ws, AuditFilter(), batch=1000)]
        assert batches == [1000, 1000, 500]
        chunks = [c async for c in await audit.csv_chunks(env.core, env.principal, AuditFilter(from_ms=1_100))]
    assert len(chunks) == 3  # one chunk per batch: the export never holds the whole log
    parsed = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    assert parsed[0] == list(audit.CSV_COLUMNS) and len(parsed) == 1 + 2_400
    assert parsed[1][5] == "q100" and parsed[1][6] == '{"i":100}' and parsed[-1][5] == "q2499"


def test_every_csv_cell_that_starts_like_a_formula_is_text() -> None:
    text_columns = [c for c in audit.CSV_COLUMNS if c != "occurred_at"]
    cells = {column: f"{start}cmd|' /C calc'!A0" for column, start in zip(text_columns, "=+-@\t\r\0=")}
    buffer = io.StringIO()
    csv.writer(buffer).writerow(audit.csv_row(AuditRow(**cells, occurred_at=0)))
    [read_back] = list(csv.reader(io.StringIO(buffer.getvalue())))
    epoch = "1970-01-01T00:00:00.000Z"
    assert read_back == [f"'{cells[c]}" if c in cells else epoch for c in audit.CSV_COLUMNS]
    plain = AuditRow(id="evt_1", workspace_id="ws_1", event_type="queue.created", actor_id="key_1",
                     resource_type=None, resource_id="it's", metadata="{}", occurred_at=0, ip_address=None)
    assert audit.csv_row(plain) == ["evt_1", "ws_1", "queue.created", "key_1", "", "it's", "{}", epoch, ""]
