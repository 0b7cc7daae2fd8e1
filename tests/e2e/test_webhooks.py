"""Webhooks end to end: signed lifecycle events, subscriptions, retries, rotation, the delivery log."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from standardwebhooks import Webhook as StandardWebhook

from rotor_lite.sdk import RotorSignatureError, Webhook
from tests.helpers import Receiver, Reply, ServerProcess, offline, wait_until

pytestmark = pytest.mark.both_delivery_paths  # every test: in-process, and through two delivery helpers

FAST = {"ROTOR_WEBHOOKS_RETRY_SCHEDULE": "0s,50ms,100ms", "ROTOR_WEBHOOKS_POLL_INTERVAL": "50ms"}


@pytest.fixture
def fast_server(make_server: Callable[..., ServerProcess]) -> ServerProcess:
    return make_server(**FAST)


def _queue(http: object, name: str, url: str, attempts: int = 1) -> None:
    created = http.post("/v1/queues", json={"name": name, "callback_url": url, "retry_attempts": attempts,  # type: ignore[attr-defined]
                                            "defaultJobOptions": {"backoff": {"type": "fixed", "delay": 10}}})
    assert created.status_code == 201, created.text


def test_events_are_signed_and_verify_with_standard_webhooks(fast_server: ServerProcess, receiver: Receiver) -> None:
    with fast_server.client() as http:
        hook = http.post("/v1/webhooks", json={"url": receiver.url("/wh"), "eventTypes": ["job.completed", "job.failed"]})
        assert hook.status_code == 201, hook.text
        body = hook.json()
        assert body["id"].startswith("wh_") and body["secret"].startswith("whsec_")
        assert body["eventTypes"] == ["job.completed", "job.failed"]
        assert "secret" not in http.get(f"/v1/webhooks/{body['id']}").json()
        _queue(http, "ok", receiver.url("/cb"))
        receiver.script("/bad", Reply(status=500))
        _queue(http, "bad", receiver.url("/bad"))
        done = http.post("/v1/queues/ok/jobs", json={"payload": {"n": 1}}).json()["id"]
        failed = http.post("/v1/queues/bad/jobs", json={"payload": {"n": 2}}).json()["id"]
        events = wait_until(lambda: len(receiver.for_path("/wh")) >= 2 and receiver.for_path("/wh"))

    by_type = {}
    for got in events:
        event = StandardWebhook(body["secret"]).verify(got.body, got.headers)
        assert Webhook(body["secret"]).verify(got.body, got.headers) == event
        assert got.headers["rotor-webhook-id"] == got.headers["webhook-id"] == event["id"]
        assert got.headers["rotor-webhook-signature"] == got.headers["webhook-signature"]
        assert event["type"] == event["event"] and event["webhookId"] == body["id"]
        by_type[event["type"]] = event["data"]
    assert by_type["job.completed"]["jobId"] == done and by_type["job.completed"]["result"] == {"ok": True}
    assert by_type["job.completed"]["queueName"] == "ok" and by_type["job.completed"]["attempts"] == 1
    assert by_type["job.failed"]["jobId"] == failed and by_type["job.failed"]["failReason"].startswith("HTTP 500")
    with pytest.raises(RotorSignatureError):
        Webhook(body["secret"]).verify(events[0].body + b" ", events[0].headers)


def test_only_subscribed_events_arrive_and_test_always_does(fast_server: ServerProcess, receiver: Receiver) -> None:
    with fast_server.client() as http:
        hook = http.post("/v1/webhooks", json={"url": receiver.url("/only-failed"), "eventTypes": ["job.failed"]}).json()
        drained = http.post("/v1/webhooks", json={"url": receiver.url("/drained"), "eventTypes": ["queue.drained"]}).json()
        _queue(http, "q", receiver.url("/cb"))
        job = http.post("/v1/queues/q/jobs", json={}).json()["id"]
        wait_until(lambda: http.get(f"/v1/queues/q/jobs/{job}").json()["state"] == "completed")
        test = http.post(f"/v1/webhooks/{hook['id']}/test")
        assert test.status_code == 202 and test.json()["eventType"] == "webhook.test"
        [got] = wait_until(lambda: receiver.for_path("/only-failed"))
        # Queues of earlier tests in this module may drain too: look at this queue's events only.
        verify = Webhook(drained["secret"]).verify
        [drain_event] = wait_until(
            lambda: [verify(r.body, r.headers) for r in receiver.for_path("/drained")
                     if verify(r.body, r.headers)["data"]["queueName"] == "q"]
        )
    event = Webhook(hook["secret"]).verify(got.body, got.headers)
    assert event["type"] == "webhook.test" and event["data"]["message"] == "This is a test event from Rotor."
    assert drain_event["data"] == {"queueName": "q"}


def test_cookies_a_webhook_endpoint_sets_are_never_sent_back(fast_server: ServerProcess, receiver: Receiver) -> None:
    # One session serves every workspace's webhooks and alerts; by name, since aiohttp's default
    # jar ignores cookies of hosts given as IP addresses.
    url = receiver.url("/wh-cookie").replace("127.0.0.1", "localhost")
    receiver.script("/wh-cookie", Reply(headers={"Set-Cookie": "session=tenant-a-secret; Path=/"}))
    with fast_server.client() as http:
        hook = http.post("/v1/webhooks", json={"url": url, "eventTypes": ["job.completed"]}).json()
        for expected in (1, 2):
            assert http.post(f"/v1/webhooks/{hook['id']}/test").status_code == 202
            got = wait_until(lambda n=expected: len(receiver.for_path("/wh-cookie")) >= n and receiver.for_path("/wh-cookie"))
    assert all("cookie" not in r.headers for r in got), [r.headers for r in got]


def test_failed_deliveries_retry_with_the_same_message_id(fast_server: ServerProcess, receiver: Receiver) -> None:
    receiver.script("/flaky", Reply(status=503), Reply(status=500))
    with fast_server.client() as http:
        hook = http.post("/v1/webhooks", json={"url": receiver.url("/flaky"), "eventTypes": ["job.completed"]}).json()
        _queue(http, "q", receiver.url("/cb"))
        http.post("/v1/queues/q/jobs", json={})
        attempts = wait_until(lambda: len(receiver.for_path("/flaky")) == 3 and receiver.for_path("/flaky"))
        log = wait_until(lambda: (d := http.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["data"])
                         and d[0]["status"] == "succeeded" and d)
    assert len({a.headers["webhook-id"] for a in attempts}) == 1
    assert len({a.body for a in attempts}) == 1
    assert log[0]["attempts"] == 3 and log[0]["responseStatus"] == 200 and log[0]["nextAttemptAt"] is None


def test_exhausted_delivery_is_failed_and_can_be_redelivered(fast_server: ServerProcess, receiver: Receiver) -> None:
    receiver.script("/down", *[Reply(status=500)] * 3)
    with fast_server.client() as http:
        hook = http.post("/v1/webhooks", json={"url": receiver.url("/down"), "eventTypes": ["webhook.test"]}).json()
        message = http.post(f"/v1/webhooks/{hook['id']}/test").json()["id"]
        failed = wait_until(lambda: (d := http.get(f"/v1/webhooks/{hook['id']}/deliveries?status=failed").json()["data"]) and d)
        assert failed[0]["id"] == message and failed[0]["attempts"] == 3 and failed[0]["responseStatus"] == 500
        again = http.post(f"/v1/webhooks/{hook['id']}/deliveries/{message}/redeliver")
        assert again.status_code == 202, again.text
        wait_until(lambda: len(receiver.for_path("/down")) == 4)
        assert http.post(f"/v1/webhooks/{hook['id']}/deliveries/msg_{'0' * 32}/redeliver").status_code == 404
    assert receiver.for_path("/down")[-1].headers["webhook-id"] == message


def test_rotated_secret_signs_alongside_the_old_one(fast_server: ServerProcess, receiver: Receiver) -> None:
    with fast_server.client() as http:
        hook = http.post("/v1/webhooks", json={"url": receiver.url("/rot"), "eventTypes": ["webhook.test"]}).json()
        rotated = http.post(f"/v1/webhooks/{hook['id']}/rotate-secret")
        assert rotated.status_code == 200 and rotated.json()["secret"] != hook["secret"]
        http.post(f"/v1/webhooks/{hook['id']}/test")
        [got] = wait_until(lambda: receiver.for_path("/rot"))
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for secret in (hook["secret"], rotated.json()["secret"]):
        assert StandardWebhook(secret).verify(got.body, got.headers)["type"] == "webhook.test"


def test_crud_validation_and_tenancy(fast_server: ServerProcess, receiver: Receiver) -> None:
    with fast_server.client() as http:
        for bad in ({"url": receiver.url(), "eventTypes": []}, {"url": receiver.url(), "eventTypes": ["job.nope"]},
                    {"url": "ftp://x", "eventTypes": ["job.failed"]}, {"eventTypes": ["job.failed"]},
                    {"url": receiver.url(), "eventTypes": ["job.failed"], "extra": 1}):
            response = http.post("/v1/webhooks", json=bad)
            assert response.status_code == 422, (bad, response.text)
            assert response.json()["error"]["code"] == "VALIDATION_ERROR"
        assert http.get("/v1/webhooks").json() == {"data": []}
        hook = http.post("/v1/webhooks", json={"url": receiver.url(), "event_types": ["job.failed"]}).json()
        assert [h["id"] for h in http.get("/v1/webhooks").json()["data"]] == [hook["id"]]
        updated = http.patch(f"/v1/webhooks/{hook['id']}", json={"eventTypes": ["job.completed"]}).json()
        assert updated["eventTypes"] == ["job.completed"] and updated["enabled"] is True
        assert http.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
        for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/test"), ("POST", "/rotate-secret"), ("GET", "/deliveries")):
            assert http.request(method, f"/v1/webhooks/{hook['id']}{path}").status_code == 404
    other = _other_workspace_key(fast_server)
    with fast_server.client() as http, fast_server.client(other) as stranger:
        mine = http.post("/v1/webhooks", json={"url": receiver.url(), "eventTypes": ["job.failed"]}).json()
        assert stranger.get(f"/v1/webhooks/{mine['id']}").status_code == 404
        assert stranger.get("/v1/webhooks").json() == {"data": []}


def _other_workspace_key(server: ServerProcess) -> str:
    return str(offline(server.data_dir, "workspaces", "create", "other")["key"])


def test_cli_webhooks_and_alerts(fast_server: ServerProcess, receiver: Receiver) -> None:
    import json

    from click.testing import CliRunner

    from rotor_lite.cli import main

    runner = CliRunner()
    base = ["--api-key", fast_server.api_key, "--api-url", fast_server.url]
    created = runner.invoke(main, ["webhooks", "create", "--url", receiver.url("/cli"), "--event", "job.failed,webhook.test",
                                   "--json", *base])
    assert created.exit_code == 0, created.output
    hook = json.loads(created.output)
    assert hook["eventTypes"] == ["job.failed", "webhook.test"] and hook["secret"].startswith("whsec_")
    listed = runner.invoke(main, ["webhooks", "list", *base])
    assert hook["id"] in listed.output and "whsec_" not in listed.output
    assert runner.invoke(main, ["webhooks", "test", hook["id"], *base]).exit_code == 0
    wait_until(lambda: receiver.for_path("/cli"))
    log = wait_until(lambda: "succeeded" in (out := runner.invoke(main, ["webhooks", "deliveries", hook["id"], *base]).output) and out)
    assert "webhook.test" in log
    rotated = runner.invoke(main, ["webhooks", "rotate-secret", hook["id"], *base])
    assert rotated.exit_code == 0 and "whsec_" in rotated.output
    assert runner.invoke(main, ["webhooks", "delete", hook["id"], "--force", *base]).exit_code == 0
    assert runner.invoke(main, ["webhooks", "get", hook["id"], *base]).exit_code == 1
    alerts = runner.invoke(main, ["alerts", "set", "--email", "ops@example.test", *base])
    assert alerts.exit_code == 0 and "ops@example.test" in alerts.output
    assert "ops@example.test" in runner.invoke(main, ["alerts", "get", *base]).output
