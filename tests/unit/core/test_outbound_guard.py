"""The connect-time SSRF guard: even a URL that slipped past validation never reaches a private address.

Each test points a client at a real listener on 127.0.0.1 that counts the connections it accepts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from rotor_lite.engine import sending
from rotor_lite.engine.delivery import Deliverer
from rotor_lite.engine.outbound import guarded_session
from rotor_lite.models import BackoffType, Claimed, Queue, QueueState
from rotor_lite.schemas import WebhookCreate
from rotor_lite.services import webhooks
from tests.helpers import ConnectionCounter
from tests.notify_helpers import FakeClock, notify_env

LOOPBACK_HOSTS = ["127.0.0.1", "127。0。0。1", "[::ffff:127.0.0.1]", "localhost"]


def _unvalidated(url: str, **_: object) -> str:
    """Stands in for the write-time check: as if some parser difference let the URL through."""
    return url


async def _accepted(target: ConnectionCounter, count: int) -> None:
    for _ in range(100):
        if target.accepted == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{target.accepted} connections accepted, expected {count}")


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
async def test_the_guarded_session_refuses_to_connect_to_a_private_address(host: str) -> None:
    with ConnectionCounter() as target:
        async with guarded_session(allow_private=False, limit=4) as session:
            with pytest.raises(aiohttp.ClientConnectorError, match="not a public address"):
                await session.post(f"http://{host}:{target.port}/cb", data=b"{}")
        assert target.accepted == 0


async def test_the_session_connects_to_loopback_when_private_networks_are_allowed() -> None:
    with ConnectionCounter() as target:
        async with guarded_session(allow_private=True, limit=4) as session:
            with pytest.raises(aiohttp.ClientConnectionError):  # the counter hangs up without answering
                await session.post(f"http://127。0。0。1:{target.port}/cb", data=b"{}")
        await _accepted(target, 1)


async def test_a_callback_that_skipped_validation_is_not_connected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sending, "check_callback_url", _unvalidated)
    with ConnectionCounter() as target:
        queue = Queue(
            rowid=1, workspace_id="ws_1", name="q", concurrency=1, max_attempts=1, backoff_type=BackoffType.FIXED,
            backoff_delay_ms=0, callback_url=f"http://127.0.0.1:{target.port}/cb", callback_headers={},
            callback_secret="s", approval_required=False, timeout_ms=5000, state=QueueState.ACTIVE,
            created_at=0, updated_at=0,
        )
        job = Claimed(rowid=1, id="job_1", queue_id=1, payload=b"{}", attempt=1, max_attempts=1, lease_token="t",
                      concurrency_key=None)
        async with Deliverer(FakeClock(), allow_private=False, max_connections=4) as deliverer:
            outcome = await deliverer.deliver(queue, job)
        assert not outcome.ok and outcome.status is None and "not a public address" in (outcome.error or "")
        assert target.accepted == 0


async def test_a_webhook_that_skipped_validation_is_not_connected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhooks, "check_callback_url", _unvalidated)
    monkeypatch.setattr(sending, "check_callback_url", _unvalidated)
    with ConnectionCounter() as target:
        async with notify_env(tmp_path, callbacks__allow_private_networks=False) as env:
            hook, _ = await webhooks.create_webhook(env.core, env.principal, WebhookCreate(
                url=f"http://127.0.0.1:{target.port}/wh", event_types=["job.completed"]))
            await env.core.db.write(lambda conn: env.core.events.emit(
                conn, env.principal.workspace_id, "job.completed", {"jobId": "job_1", "queueName": "q"}))
            await env.run()
            [row] = (await webhooks.list_deliveries(env.core, env.principal, hook.id, status=None, limit=5,
                                                    cursor=None))[0]
        assert row.response_status is None and "not a public address" in (row.last_error or "")
        assert target.accepted == 0
