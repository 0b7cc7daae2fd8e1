"""What the dashboard's tests share: signing in over plain HTTP, the forms of a page, and a workflow whose run
has steps in parallel, an invoked child and a step waiting on a signal."""

from __future__ import annotations

import asyncio
import re
from html.parser import HTMLParser
from typing import Any

import httpx

from rotor_lite.sdk import create_function
from rotor_lite.sdk.workflows import Context, Step

SCRIPT = "<script>alert('x')</script>"  # user data every escaping test puts everywhere it can
ESCAPED = "&lt;script&gt;"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def signed_in(base_url: str, api_key: str) -> httpx.Client:
    """An HTTP client holding a dashboard session of `api_key` (it does not follow redirects)."""
    client = httpx.Client(base_url=base_url, follow_redirects=False, timeout=30)
    token = csrf_of(client.get("/dashboard/login").text)
    answer = client.post("/dashboard/login", data={"csrf": token, "api_key": api_key, "next": "/dashboard"})
    assert answer.status_code == 303, answer.text
    return client


def post_form(client: httpx.Client, page: str, action: str, **fields: str) -> httpx.Response:
    """POST a form the way the page's own form does: with the CSRF token the page was drawn with."""
    return client.post(action, data={"csrf": csrf_of(client.get(page).text), **fields})


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.actions: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form" and (found.get("method") or "").lower() == "post":
            self.actions.append(found.get("action") or "")


def post_actions(html: str) -> list[str]:
    """Where the page's POST forms (its buttons that change something) send."""
    parser = _Forms()
    parser.feed(html)
    return parser.actions


def scorer_result(name: str) -> dict[str, Any]:
    return {"scorer": name, "score": len(name)}


@create_function(id="lead-score", trigger={"event": "lead.score"}, retries=0)
async def lead_score(ctx: Context, step: Step) -> Any:
    return await step.run("score", scorer_result, ctx.event.data["name"])


@create_function(id="onboard-contact", trigger={"event": "contact.created"}, retries=0)
async def onboard_contact(ctx: Context, step: Step) -> Any:
    """fetch → (enrich email ‖ enrich phone ‖ invoke a scorer) → wait for a person's signal."""
    contact = await step.run("fetch-contact", lambda: {"name": ctx.event.data["name"], "email": "ada@example.com"})
    email, phone, score = await asyncio.gather(
        step.run("enrich-email", lambda: {"valid": True, "domain": contact["email"].split("@")[1]}),
        step.run("enrich-phone", lambda: {"phone": "+44 20 7946 0000"}),
        step.invoke("score-lead", workflow="lead-score", data={"name": contact["name"]}, timeout="1m"),
    )
    approval = await step.wait_for_signal("approval-gate", signal=f"approve-{ctx.run_id}", timeout="1h")
    return {"contact": contact, "email": email, "phone": phone, "score": score, "approved": approval}
