"""`approvals` and `guardrails` send the method, path, query and body API.md documents, sync and async."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from rotor_lite.sdk import AsyncRotor, Rotor

CASES: list[tuple[str, Callable[[Any], Any], str, str, dict[str, str], Any]] = [
    ("approvals.list", lambda c: c.approvals.list(status="pending", queue="ai-outreach", limit=20), "GET", "/v1/approvals",
     {"status": "pending", "queue": "ai-outreach", "limit": "20"}, None),
    ("approvals.get", lambda c: c.approvals.get("apv_1"), "GET", "/v1/approvals/apv_1", {}, None),
    ("approvals.approve", lambda c: c.approvals.approve("apv_1"), "POST", "/v1/approvals/apv_1/approve", {}, None),
    ("approvals.reject", lambda c: c.approvals.reject("apv_1"), "POST", "/v1/approvals/apv_1/reject", {}, {}),
    ("approvals.reject reason", lambda c: c.approvals.reject("apv_1", reason="tone"), "POST",
     "/v1/approvals/apv_1/reject", {}, {"reason": "tone"}),
    ("guardrails.get", lambda c: c.guardrails.get(), "GET", "/v1/guardrails", {}, None),
    ("guardrails.update kwargs", lambda c: c.guardrails.update(dnc_emails=("a@x.io",), pii_redaction_enabled=True, pii_mode="redact"),
     "PATCH", "/v1/guardrails", {}, {"dncEmails": ["a@x.io"], "piiRedactionEnabled": True, "piiMode": "redact"}),
    ("guardrails.update dict", lambda c: c.guardrails.update({"competitorDomains": ["rivalcrm.com"]}), "PATCH",
     "/v1/guardrails", {}, {"competitorDomains": ["rivalcrm.com"]}),
    ("guardrails.append_dnc", lambda c: c.guardrails.append_dnc(emails=["n@x.io"]), "POST", "/v1/guardrails/dnc", {},
     {"emails": ["n@x.io"]}),
    ("guardrails.appendDnc minimal", lambda c: c.guardrails.appendDnc(domains=["d.io"], minimal=True), "POST",
     "/v1/guardrails/dnc", {"return": "minimal"}, {"domains": ["d.io"]}),
    ("guardrails.remove_dnc_email", lambda c: c.guardrails.remove_dnc_email("a+b@x.io"), "DELETE",
     "/v1/guardrails/dnc/emails/a%2Bb%40x.io", {}, None),
    ("guardrails.remove_dnc_domain", lambda c: c.guardrails.remove_dnc_domain("d.io"), "DELETE",
     "/v1/guardrails/dnc/domains/d.io", {}, None),
    ("guardrails.list_dnc", lambda c: c.guardrails.list_dnc("domains", limit=5, cursor="c"), "GET",
     "/v1/guardrails/dnc/domains", {"limit": "5", "cursor": "c"}, None),
    ("guardrails.stats", lambda c: c.guardrails.stats(days=7), "GET", "/v1/guardrails/stats", {"days": "7"}, None),
]


def _recorder() -> tuple[list[httpx.Request], httpx.MockTransport, httpx.MockTransport]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    return seen, httpx.MockTransport(handler), httpx.MockTransport(handler)


@pytest.mark.parametrize(("name", "call", "method", "path", "query", "body"), CASES, ids=[c[0] for c in CASES])
async def test_requests(name: str, call: Callable[[Any], Any], method: str, path: str, query: dict[str, str], body: Any) -> None:
    seen, sync_transport, async_transport = _recorder()
    with Rotor(api_key="rt_ws_x", base_url="http://rotor.test", transport=sync_transport) as client:
        call(client)
    async with AsyncRotor(api_key="rt_ws_x", base_url="http://rotor.test", transport=async_transport) as aclient:
        await call(aclient)
    for request in seen:
        assert request.method == method and request.url.raw_path.split(b"?")[0].decode() == path
        assert dict(request.url.params) == query
        assert (json.loads(request.content) if request.content else None) == body


def test_update_refuses_unknown_fields() -> None:
    with Rotor(api_key="rt_ws_x", base_url="http://rotor.test", transport=_recorder()[1]) as client, pytest.raises(TypeError):
        client.guardrails.update(dnc_email=["a@x.io"])
