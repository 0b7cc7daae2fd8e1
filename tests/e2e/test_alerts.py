"""Failure alerts end to end: a Slack card to a real HTTP receiver and an email to a real SMTP server."""

from __future__ import annotations

import email
from collections.abc import Iterator
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.helpers import Receiver, Reply, ServerProcess, free_port, offline, wait_until

pytestmark = pytest.mark.both_delivery_paths  # every test: in-process, and through two delivery helpers


class Mailbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def test_terminal_failure_sends_slack_card_and_email_once(
    make_server: Any, receiver: Receiver, mailbox: tuple[Mailbox, int]
) -> None:
    box, smtp_port = mailbox
    server: ServerProcess = make_server(
        ROTOR_ALERTS_SLACK_URL_PREFIXES=f"http://127.0.0.1:{receiver.port}/",
        ROTOR_ALERTS_SMTP_HOST="127.0.0.1", ROTOR_ALERTS_SMTP_PORT=str(smtp_port), ROTOR_ALERTS_SMTP_STARTTLS="false",
        ROTOR_ALERTS_SMTP_FROM="alerts@example.test", ROTOR_ALERTS_DASHBOARD_URL="https://rotor.example.test/dash",
        ROTOR_WEBHOOKS_POLL_INTERVAL="50ms",
    )
    receiver.script("/cb", Reply(status=500), Reply(status=502))
    with server.client() as http:
        put = http.put("/v1/alerts", json={"email": "ops@example.test", "slackWebhookUrl": receiver.url("/slack")})
        assert put.status_code == 200, put.text
        assert http.get("/v1/alerts").json()["slackWebhookUrl"] == receiver.url("/slack")
        http.post("/v1/queues", json={"name": "enrichment", "callback_url": receiver.url("/cb"), "retry_attempts": 2,
                                      "defaultJobOptions": {"backoff": {"type": "fixed", "delay": 300}}})
        job = http.post("/v1/queues/enrichment/jobs", json={"payload": {"x": 1}}).json()["id"]
        wait_until(lambda: len(receiver.for_path("/cb")) == 1)
        assert http.get(f"/v1/queues/enrichment/jobs/{job}").json()["state"] != "failed"
        [slack] = wait_until(lambda: receiver.for_path("/slack"), timeout=10)
        wait_until(lambda: box.messages)

    assert len(receiver.for_path("/cb")) == 2  # the alert came after the last attempt, not the first
    card = slack.json()
    assert card["blocks"][0]["text"]["text"] == "❌ *Job failed in `enrichment`*"
    assert f"Job ID: {job}" in card["blocks"][1]["text"]["text"] and "Reason: HTTP 502" in card["blocks"][1]["text"]["text"]
    link = card["blocks"][2]["elements"][0]
    assert link["text"]["text"] == "View run →" and link["url"] == f"https://rotor.example.test/dash/queues/enrichment/jobs/{job}"
    [mail] = box.messages
    assert mail["Subject"] == f"Job failed: {job} in queue enrichment"
    assert mail["From"] == "alerts@example.test" and mail["To"] == "ops@example.test"
    text = mail.get_payload(decode=True).decode()
    assert "Queue: enrichment" in text and f"Job ID: {job}" in text and "Reason: HTTP 502" in text and link["url"] in text


def test_alert_settings_are_validated(server: ServerProcess) -> None:
    with server.client() as http:
        assert http.get("/v1/alerts").json() == {"email": None, "slackWebhookUrl": None, "updatedAt": None,
                                                 "smtpConfigured": False}
        for bad, field in (({"slackWebhookUrl": "https://example.com/hook"}, "slackWebhookUrl"),
                           ({"email": "not-an-address"}, "email"), ({"bogus": 1}, "bogus")):
            response = http.put("/v1/alerts", json=bad)
            assert response.status_code == 422 and response.json()["error"]["details"]["field"] == field
        ok = http.put("/v1/alerts", json={"slack_webhook_url": "https://hooks.slack.com/services/T/B/x"})
        assert ok.status_code == 200 and ok.json()["email"] is None
        assert http.put("/v1/alerts", json={}).json()["slackWebhookUrl"] is None


def test_the_slack_url_is_shown_whole_to_admins_only(server: ServerProcess) -> None:
    url = "https://hooks.slack.com/services/T01234567/B01234567/abcdefghijklmnopqrstuvwx"
    hint = "https://hooks.slack.com/services/T0123…"  # the path's secret part cut as secrets' hints are
    viewer, developer = (offline(server.data_dir, "keys", "create", "--workspace", "default", "--role", role)["key"]
                         for role in ("viewer", "developer"))
    with server.client() as admin:
        assert admin.put("/v1/alerts", json={"slackWebhookUrl": url}).json()["slackWebhookUrl"] == url
        assert admin.get("/v1/alerts").json()["slackWebhookUrl"] == url
    for key in (viewer, developer):
        with server.client(key) as http:
            assert http.get("/v1/alerts").json()["slackWebhookUrl"] == hint
    with server.client(developer) as http:
        assert http.put("/v1/alerts", json={"slackWebhookUrl": url}).json()["slackWebhookUrl"] == hint
        echoed = http.put("/v1/alerts", json={"slackWebhookUrl": hint})  # the hint sent back is not a URL
        assert echoed.status_code == 422 and echoed.json()["error"]["details"]["field"] == "slackWebhookUrl"
    with server.client() as admin:
        assert admin.get("/v1/alerts").json()["slackWebhookUrl"] == url
