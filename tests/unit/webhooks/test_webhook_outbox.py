"""The outbox and webhook delivery rules, driven by a fake clock against a real receiver on loopback."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from standardwebhooks import Webhook as StandardWebhook

from rotor_lite.schemas import WebhookCreate, WebhookUpdate
from rotor_lite.services import webhooks
from tests.helpers import Received, Receiver, Reply
from tests.notify_helpers import notify_env

DAY_MS = 86_400_000


async def _emit(env: object, event_type: str, data: dict[str, object]) -> None:
    core, principal = env.core, env.principal  # type: ignore[attr-defined]
    await core.db.write(lambda conn: core.events.emit(conn, principal.workspace_id, event_type, data))


async def test_nothing_is_written_when_nobody_listens(tmp_path: Path) -> None:
    async with notify_env(tmp_path) as env:
        await _emit(env, "job.completed", {"jobId": "job_x"})
        assert await env.core.db.fetchone("SELECT count(*) FROM outbox") == (0,)
        assert not env.sink.wants(env.principal.workspace_id, "job.completed")


async def test_retry_schedule_then_failed(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script("/down", *[Reply(status=500)] * 3)
    async with notify_env(tmp_path) as env:
        hook, secret = await webhooks.create_webhook(env.core, env.principal, WebhookCreate(
            url=receiver.url("/down"), event_types=["job.completed"]))
        await _emit(env, "job.completed", {"jobId": "job_1", "queueName": "q"})
        await env.run()
        [row] = (await webhooks.list_deliveries(env.core, env.principal, hook.id, status=None, limit=5, cursor=None))[0]
        assert (row.attempts, row.status, row.next_attempt_at) == (1, "pending", env.clock.now + 30_000)
        await env.run()  # not due yet: nothing is sent
        assert len(receiver.for_path("/down")) == 1
        env.clock.advance(30_000)
        await env.run()
        env.clock.advance(300_000)
        await env.run()
        [row] = (await webhooks.list_deliveries(env.core, env.principal, hook.id, status=None, limit=5, cursor=None))[0]
    assert (row.attempts, row.status, row.response_status) == (3, "failed", 500)
    sent = receiver.for_path("/down")
    assert len(sent) == 3 and len({s.headers["webhook-id"] for s in sent}) == 1
    headers = sent[0].headers  # the fake clock is years off, so compare signatures instead of verify()
    moment = datetime.fromtimestamp(int(headers["webhook-timestamp"]), tz=timezone.utc)
    expected = StandardWebhook(secret).sign(headers["webhook-id"], moment, sent[0].body.decode())
    assert headers["webhook-signature"] == expected


async def test_endpoint_failing_for_five_days_is_disabled_and_an_update_enables_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.script("/dead", *[Reply(status=503)] * 20)
    async with notify_env(tmp_path, retry_schedule=["0s", "1d"]) as env:
        hook, _ = await webhooks.create_webhook(env.core, env.principal, WebhookCreate(
            url=receiver.url("/dead"), event_types=["job.failed"]))
        for _ in range(6):  # one failing delivery a day
            await _emit(env, "job.failed", {"jobId": "job_1"})
            await env.run()
            current = await webhooks.get_webhook(env.core, env.principal, hook.id)
            if not current.enabled:
                break
            env.clock.advance(DAY_MS)
        assert not current.enabled and current.disabled_at == env.clock.now
        assert env.clock.now - hook.created_at == 5 * DAY_MS
        audit = await env.core.db.fetchall("SELECT event_type, actor_id, resource_id FROM audit_event")
        assert ("webhook.disabled", "system", hook.id) in [tuple(a) for a in audit]
        sent = len(receiver.for_path("/dead"))
        await _emit(env, "job.failed", {"jobId": "job_2"})  # a disabled endpoint gets nothing
        env.clock.advance(DAY_MS)
        await env.run()
        assert len(receiver.for_path("/dead")) == sent
        enabled = await webhooks.update_webhook(env.core, env.principal, hook.id, WebhookUpdate())
        assert enabled.enabled and enabled.disabled_at is None


async def test_a_success_resets_the_failing_streak(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script("/flaky", *[Reply(status=500)] * 4)
    async with notify_env(tmp_path, retry_schedule=["0s"]) as env:
        hook, _ = await webhooks.create_webhook(env.core, env.principal, WebhookCreate(
            url=receiver.url("/flaky"), event_types=["job.failed"]))
        for day in range(10):
            await _emit(env, "job.failed", {"jobId": f"job_{day}"})
            await env.run()
            env.clock.advance(DAY_MS)
        current = await webhooks.get_webhook(env.core, env.principal, hook.id)
    assert current.enabled and current.failing_since is None


async def test_events_survive_until_fanned_out(tmp_path: Path, receiver: Receiver) -> None:
    """An event committed but not yet delivered is still there after a restart (same data directory)."""
    key = b"k" * 32
    async with notify_env(tmp_path, key=key) as env:
        await webhooks.create_webhook(env.core, env.principal, WebhookCreate(
            url=receiver.url("/later"), event_types=["queue.drained"]))
        await _emit(env, "queue.drained", {"queueName": "q"})
    assert receiver.for_path("/later") == []
    async with notify_env(tmp_path, key=key) as env:
        await env.run()
    [got] = receiver.for_path("/later")
    assert got.json()["data"] == {"queueName": "q"}


def _signatures_by(secrets_: list[str], got: Received) -> list[str]:
    moment = datetime.fromtimestamp(int(got.headers["webhook-timestamp"]), tz=timezone.utc)
    return [StandardWebhook(secret).sign(got.headers["webhook-id"], moment, got.body.decode()) for secret in secrets_]


async def test_the_old_secret_signs_alongside_the_new_one_until_its_ttl_ends_and_never_after(
    tmp_path: Path, receiver: Receiver
) -> None:
    async with notify_env(tmp_path, webhooks__previous_secret_ttl="24h") as env:
        hook, old = await webhooks.create_webhook(env.core, env.principal, WebhookCreate(
            url=receiver.url("/rotated"), event_types=["job.completed"]))
        rotated, new = await webhooks.rotate_secret(env.core, env.principal, hook.id)
        assert rotated.previous_expires_at == env.clock.now + DAY_MS
        for step in (DAY_MS - 1, 1, 365 * DAY_MS):  # the TTL's last millisecond, its end, a year on
            env.clock.advance(step)
            await _emit(env, "job.completed", {"jobId": f"job_{step}"})
            await env.run()
    within, ended, later = receiver.for_path("/rotated")
    assert within.headers["webhook-signature"].split(" ") == _signatures_by([new, old], within)
    assert ended.headers["webhook-signature"] == " ".join(_signatures_by([new], ended))
    assert later.headers["webhook-signature"] == " ".join(_signatures_by([new], later))
