"""The SSRF guard over HTTP: every field that takes a destination refuses hosts the HTTP client
would turn into a private address (Unicode dots and digits normalise to an IP literal)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import ServerProcess

UNICODE_PRIVATE_URLS = [
    "https://127。0。0。1:28443/a",  # ideographic full stops
    "https://１２７.０.０.１/",  # full-width digits
    "https://127.0.0．1/",  # full-width full stop
    "https://０.０.０.０/",
    "https://169。254。169。254/",
]
PUBLIC_URL = "https://example.com/hooks"


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A server with the default guard; any https URL may be a Slack URL, so only the guard stands in the way."""
    server = ServerProcess(
        data_dir=tmp_path_factory.mktemp("outbound") / "data",
        env={"ROTOR_CALLBACKS_ALLOW_PRIVATE_NETWORKS": "false", "ROTOR_ALERTS_SLACK_URL_PREFIXES": "https://"},
    ).start()
    with server.client() as client:
        yield client
    server.kill()


def _refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and error["details"]["field"] == field, error


@pytest.mark.parametrize("url", UNICODE_PRIVATE_URLS)
def test_queue_create_refuses_a_unicode_private_host(http: httpx.Client, url: str) -> None:
    name = f"uq-{uuid.uuid4().hex[:8]}"
    _refused(http.post("/v1/queues", json={"name": name, "callback_url": url}), "callback_url")
    assert http.get(f"/v1/queues/{name}").status_code == 404


@pytest.mark.parametrize("url", UNICODE_PRIVATE_URLS)
def test_queue_update_refuses_a_unicode_private_host(http: httpx.Client, url: str) -> None:
    name = f"uq-{uuid.uuid4().hex[:8]}"
    assert http.post("/v1/queues", json={"name": name, "callback_url": PUBLIC_URL}).status_code == 201
    _refused(http.patch(f"/v1/queues/{name}", json={"callback_url": url}), "callback_url")
    assert http.get(f"/v1/queues/{name}").json()["callback_url"] == PUBLIC_URL


@pytest.mark.parametrize("url", UNICODE_PRIVATE_URLS)
def test_webhook_create_and_update_refuse_a_unicode_private_host(http: httpx.Client, url: str) -> None:
    _refused(http.post("/v1/webhooks", json={"url": url, "eventTypes": ["job.failed"]}), "url")
    assert all(hook["url"] != url for hook in http.get("/v1/webhooks").json()["data"])
    hook = http.post("/v1/webhooks", json={"url": PUBLIC_URL, "eventTypes": ["job.failed"]}).json()
    _refused(http.patch(f"/v1/webhooks/{hook['id']}", json={"url": url}), "url")
    assert http.get(f"/v1/webhooks/{hook['id']}").json()["url"] == PUBLIC_URL
    assert http.delete(f"/v1/webhooks/{hook['id']}").status_code == 204


@pytest.mark.parametrize("url", UNICODE_PRIVATE_URLS)
def test_alerts_refuse_a_unicode_private_slack_host(http: httpx.Client, url: str) -> None:
    accepted = http.put("/v1/alerts", json={"slackWebhookUrl": PUBLIC_URL})  # the prefix lets any https host in
    assert accepted.status_code == 200, accepted.text
    _refused(http.put("/v1/alerts", json={"slackWebhookUrl": url}), "slackWebhookUrl")
    assert http.get("/v1/alerts").json()["slackWebhookUrl"] == PUBLIC_URL


@pytest.mark.parametrize("url", UNICODE_PRIVATE_URLS)
def test_function_registration_refuses_a_unicode_private_serve_url(http: httpx.Client, url: str) -> None:
    function_id = f"uf-{uuid.uuid4().hex[:8]}"
    body = {"id": function_id, "serve_url": url, "trigger_event": "guard.test"}
    _refused(http.post("/v1/functions", json=body), "serve_url")
    assert http.get(f"/v1/functions/{function_id}").status_code == 404
    assert http.post("/v1/functions", json={**body, "serve_url": PUBLIC_URL}).status_code == 201
    _refused(http.post("/v1/functions", json=body), "serve_url")  # registering again is an update: refused too
    assert http.get(f"/v1/functions/{function_id}").json()["serve_url"] == PUBLIC_URL
