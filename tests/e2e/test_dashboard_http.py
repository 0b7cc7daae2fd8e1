"""The dashboard over plain HTTP against a real server: sign-in and its cookie, CSRF, sign-out, revoked and
expired keys, escaping of user data, what each role is shown, auditing, and every page answering."""

from __future__ import annotations

import base64
import contextlib
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rotor_lite.config import load_settings
from rotor_lite.services.alerts import job_link
from tests.e2e.dashboard_kit import ESCAPED, SCRIPT, csrf_of, lead_score, onboard_contact, post_actions, post_form, signed_in
from tests.e2e.workflow_kit import WorkflowEnv, role_key
from tests.helpers import Receiver, Reply, ServerProcess, storage_url_of, wait_until


class World:
    """The module's server, with a queue of each kind, jobs, a schedule, a webhook and a waiting workflow run."""

    def __init__(self, server: ServerProcess, receiver: Receiver, workflows: WorkflowEnv) -> None:
        self.server, self.receiver, self.workflows = server, receiver, workflows
        self.api = server.client()
        self.ids: dict[str, str] = {}

    def build(self) -> World:
        api, rec = self.api, self.receiver
        rec.script("/broken", *[Reply(status=500, body=f'{{"error": "{SCRIPT}"}}'.encode())] * 2)
        self._ok(api.post("/v1/queues", json={"name": "mail", "callback_url": rec.url("/mail")}))
        self._ok(api.post("/v1/queues", json={"name": "broken", "callback_url": rec.url("/broken"), "retry_attempts": 1}))
        self._ok(api.post("/v1/queues", json={"name": "held", "approval_required": True}))
        job = self._ok(api.post("/v1/queues/mail/jobs", json={"payload": {"note": SCRIPT}, "tags": [SCRIPT, "plain"]}))
        failed = self._ok(api.post("/v1/queues/broken/jobs", json={"payload": {"n": 1}}))
        held = self._ok(api.post("/v1/queues/held/jobs", json={"payload": {"subject": SCRIPT}}))
        schedule = self._ok(api.post("/v1/schedules", json={"queue": "mail", "name": "weekday-mail", "cron": "0 9 * * 1-5",
                                                            "timezone": "America/New_York", "payload": {"note": SCRIPT}}))
        hook = self._ok(api.post("/v1/webhooks", json={"url": rec.url("/hook"), "eventTypes": ["job.failed"]}))
        self.workflows.serve([onboard_contact, lead_score])
        run = self.workflows.send("contact.created", {"name": SCRIPT})["runIds"][0]
        self.ids = {"job": job["id"], "failed": failed["id"], "held": held["id"], "approval": held["approvalId"],
                    "schedule": schedule["id"], "webhook": hook["id"], "run": run}
        wait_until(lambda: api.get(f"/v1/queues/broken/jobs/{failed['id']}").json()["state"] == "failed")
        self.workflows.wait_status(run, "waiting")
        return self

    @staticmethod
    def _ok(answer: httpx.Response) -> dict[str, Any]:
        assert answer.status_code < 300, answer.text
        return dict(answer.json())

    def pages(self) -> list[str]:
        ids = self.ids
        return [
            "/dashboard", "/dashboard/queues/mail", "/dashboard/queues/mail?state=waiting",
            f"/dashboard/queues/mail?tag={SCRIPT}", f"/dashboard/queues/mail/jobs/{ids['job']}",
            f"/dashboard/queues/broken/jobs/{ids['failed']}", "/dashboard/dlq", "/dashboard/dlq?queue=broken",
            "/dashboard/approvals", "/dashboard/approvals?status=rejected", "/dashboard/runs",
            "/dashboard/runs?status=waiting&function=onboard-contact", f"/dashboard/runs/{ids['run']}",
            f"/dashboard/runs/{ids['run']}/graph", "/dashboard/schedules", f"/dashboard/schedules/{ids['schedule']}",
            "/dashboard/schedules/preview?cron=0+9+*+*+*&timezone=Europe/Paris", "/dashboard/webhooks",
            f"/dashboard/webhooks/{ids['webhook']}", "/dashboard/settings/secrets", "/dashboard/guardrails",
            "/dashboard/api-keys", "/dashboard/settings/notifications", "/dashboard/audit",
            "/dashboard/audit?event_type=queue.created", "/dashboard/audit.csv", "/dashboard/workspaces",
            "/dashboard/static/dashboard.css", "/dashboard/static/dashboard.js",
        ]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # 127.0.0.1 is a trusted proxy here, so a request can say it came over TLS (X-Forwarded-Proto).
    server = ServerProcess(data_dir=tmp_path_factory.mktemp("dash") / "data",
                           env={"ROTOR_SERVER_FORWARDED_ALLOW_IPS": "127.0.0.1"}).start()
    with Receiver() as receiver:
        workflows = WorkflowEnv(server)
        try:
            yield World(server, receiver, workflows).build()
        finally:
            workflows.close()
            server.kill()


@pytest.fixture(scope="module")
def admin(world: World) -> Iterator[httpx.Client]:
    client = signed_in(world.server.url, world.server.api_key)
    yield client
    client.close()


def cookie_header(answer: httpx.Response, name: str) -> str:
    return next(h for h in answer.headers.get_list("set-cookie") if h.startswith(f"{name}="))


# Pages -------------------------------------------------------------------------------------------


def test_every_page_answers_200_for_an_admin_within_the_page_budget(world: World, admin: httpx.Client) -> None:
    failing = {}
    for path in world.pages():
        answer = admin.get(path)
        if answer.status_code != 200:
            failing[path] = (answer.status_code, answer.text[:300])
    assert failing == {}
    page = admin.get("/dashboard")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert re.fullmatch(r"app;dur=\d+\.\d+", page.headers["server-timing"])
    assert "cdn" not in page.text.lower() and "https://" not in page.text  # every asset is the server's own



def test_a_queue_page_shows_its_fairness_rate_limit_and_pull_workers(world: World, admin: httpx.Client) -> None:
    per_tenant = {"key": "payload.tenantId"}
    created = world.api.post("/v1/queues", json={"name": "tenants", "fairness": per_tenant,
                                                 "rateLimit": {**per_tenant, "max": 10, "per": "1s"}})
    assert created.status_code == 201, created.text
    text = admin.get("/dashboard/queues/tenants").text
    assert "each <code>payload.tenantId</code> in turn" in text
    assert "10 per 1s for each <code>payload.tenantId</code>" in text
    assert "none: pull workers lease its jobs" in text

def test_the_link_of_a_failure_alert_opens_the_job_page(world: World, admin: httpx.Client) -> None:
    link = job_link(load_settings(env={}), "broken", world.ids["failed"])
    answer = admin.get(httpx.URL(link).path)
    assert answer.status_code == 200 and world.ids["failed"] in answer.text and "failed" in answer.text


def test_an_alert_link_opened_from_another_site_hops_once_to_bring_the_strict_cookie(world: World) -> None:
    path = f"/dashboard/queues/broken/jobs/{world.ids['failed']}"
    with httpx.Client(base_url=world.server.url) as browser:
        hop = browser.get(path, headers={"Sec-Fetch-Site": "cross-site"}, follow_redirects=False)
        same_site = browser.get(path, headers={"Sec-Fetch-Site": "same-origin"}, follow_redirects=False)
    assert hop.status_code == 200 and f'content="0; url={path}"' in hop.text
    assert same_site.status_code == 303 and same_site.headers["location"].startswith("/dashboard/login?next=")


def test_an_open_live_stream_does_not_hold_the_server_at_shutdown(tmp_path: Path) -> None:
    """uvicorn waits up to `server.drain_timeout` for responses in progress: the stream ends at once instead."""
    server = ServerProcess(data_dir=tmp_path / "data", env={"ROTOR_SERVER_DRAIN_TIMEOUT": "30s"}).start()
    client = signed_in(server.url, server.api_key)
    opened, ended = threading.Event(), threading.Event()

    def listen() -> None:
        with contextlib.suppress(httpx.HTTPError), client.stream("GET", "/dashboard/live") as stream:
            for _ in stream.iter_lines():
                opened.set()
        ended.set()

    threading.Thread(target=listen, daemon=True).start()
    assert opened.wait(10)
    started = time.monotonic()
    assert server.terminate() == 0
    assert time.monotonic() - started < 10 and ended.wait(5)


def test_the_overview_charts_the_last_hours_deliveries(admin: httpx.Client) -> None:
    """One job completed (mail) and one failed for good (broken): the tallies are written every 5 s."""
    page = wait_until(lambda: "2 jobs finished" in (text := admin.get("/dashboard").text) and text, timeout=15)
    assert "2 jobs finished in the last hour, at most" in page
    assert "50.0 % of 2 attempts failed in the last hour" in page


def test_live_counts_arrive_as_server_sent_events(admin: httpx.Client) -> None:
    with admin.stream("GET", "/dashboard/live") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = []
        for line in stream.iter_lines():
            lines.append(line)
            if line.startswith("data:"):
                break
    assert "event: counts" in lines and '"mail":{' in lines[-1]


# Signing in and out ------------------------------------------------------------------------------


def test_a_page_without_a_session_leads_to_sign_in_and_back(world: World) -> None:
    with httpx.Client(base_url=world.server.url, follow_redirects=False) as browser:
        answer = browser.get("/dashboard/queues/mail?state=failed")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Fqueues%2Fmail%3Fstate%3Dfailed"
        form = browser.get(answer.headers["location"])
        assert 'name="next" value="/dashboard/queues/mail?state=failed"' in form.text
        signed = browser.post("/dashboard/login", data={"csrf": csrf_of(form.text), "api_key": world.server.api_key,
                                                        "next": "/dashboard/queues/mail?state=failed"})
        assert signed.headers["location"] == "/dashboard/queues/mail?state=failed"
    for target in ("//evil.example/", "https://evil.example/dashboard", "/dashboard\\@evil.example"):
        with httpx.Client(base_url=world.server.url, follow_redirects=False) as browser:
            token = csrf_of(browser.get("/dashboard/login").text)
            fields = {"csrf": token, "api_key": world.server.api_key, "next": target}
            elsewhere = browser.post("/dashboard/login", data=fields)
        assert elsewhere.headers["location"] == "/dashboard", target


def test_the_session_cookie_is_http_only_strict_and_secure_over_tls(world: World) -> None:
    with httpx.Client(base_url=world.server.url, follow_redirects=False) as browser:
        form = browser.get("/dashboard/login")
        plain = browser.post("/dashboard/login", data={"csrf": csrf_of(form.text), "api_key": world.server.api_key})
    cookie = cookie_header(plain, "rotor_session").lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/dashboard" in cookie
    assert "secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    tls = {"X-Forwarded-Proto": "https"}  # from a trusted proxy: the browser reached it over TLS
    with httpx.Client(base_url=world.server.url, follow_redirects=False, headers=tls) as browser:
        form = browser.get("/dashboard/login")
        sign_in_cookie = cookie_header(form, "rotor_sign_in")
        assert "; secure" in sign_in_cookie.lower()
        token = sign_in_cookie.split(";")[0]  # httpx keeps a Secure cookie from a plain-HTTP server to itself
        answer = browser.post("/dashboard/login", headers={"Cookie": token},
                              data={"csrf": csrf_of(form.text), "api_key": world.server.api_key})
    assert "; secure" in cookie_header(answer, "rotor_session").lower()


def test_a_wrong_key_is_refused_and_audited(world: World) -> None:
    with httpx.Client(base_url=world.server.url, follow_redirects=False) as browser:
        form = browser.get("/dashboard/login")
        prefix = world.server.api_key[:12]
        answer = browser.post("/dashboard/login", data={"csrf": csrf_of(form.text), "api_key": prefix + "x" * 30})
    assert answer.status_code == 401 and "invalid API key" in answer.text
    assert "rotor_session" not in answer.headers.get("set-cookie", "")
    events = world.api.get("/v1/audit", params={"event_type": "auth.failed"}).json()["data"]
    assert any(e["metadata"]["route"] == "/dashboard/login" for e in events)


def test_a_queue_key_may_not_sign_in(world: World) -> None:
    key = world.api.post("/v1/api-keys", json={"label": "q", "queue": "mail", "role": "developer"}).json()["key"]
    with httpx.Client(base_url=world.server.url, follow_redirects=False) as browser:
        token = csrf_of(browser.get("/dashboard/login").text)
        answer = browser.post("/dashboard/login", data={"csrf": token, "api_key": key})
    assert answer.status_code == 403 and "queue key" in answer.text


def test_forms_without_the_sessions_csrf_token_are_refused_and_change_nothing(world: World, admin: httpx.Client) -> None:
    for fields in ({}, {"csrf": "forged"}):
        answer = admin.post("/dashboard/queues/mail/pause", data=fields)
        assert answer.status_code == 403 and "out of date" in answer.text
    assert world.api.get("/v1/queues/mail").json()["state"] == "active"
    with httpx.Client(base_url=world.server.url, follow_redirects=False) as browser:  # the sign-in form's own token
        refused = browser.post("/dashboard/login", data={"csrf": "guess", "api_key": world.server.api_key})
    assert refused.status_code == 403 and "rotor_session" not in refused.headers.get("set-cookie", "")


def test_signing_out_ends_the_session(world: World) -> None:
    client = signed_in(world.server.url, world.server.api_key)
    cookie = client.cookies["rotor_session"]
    answer = post_form(client, "/dashboard", "/dashboard/logout")
    assert answer.status_code == 303 and "max-age=0" in cookie_header(answer, "rotor_session").lower()
    with httpx.Client(base_url=world.server.url, cookies={"rotor_session": cookie}, follow_redirects=False) as stale:
        assert stale.get("/dashboard").status_code == 303
        assert stale.get("/dashboard/login").status_code == 200  # the form, not a redirect back (a loop)


def test_a_revoked_keys_sessions_end_at_their_next_request(world: World) -> None:
    created = world.api.post("/v1/api-keys", json={"label": "leaving", "role": "developer"}).json()
    client = signed_in(world.server.url, created["key"])
    assert client.get("/dashboard").status_code == 200
    assert world.api.delete(f"/v1/api-keys/{created['id']}").status_code == 204
    answer = client.get("/dashboard")
    assert answer.status_code == 401 and "revoked" in answer.text
    assert client.get("/dashboard").status_code == 303  # the session is gone, not just refused once


def test_sessions_expire(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path / "data", env={"ROTOR_DASHBOARD_SESSION_LIFETIME": "300ms"}).start()
    try:
        client = signed_in(server.url, server.api_key)
        wait_until(lambda: client.get("/dashboard").status_code == 303, timeout=5)
    finally:
        server.kill()


def test_a_team_key_chooses_its_workspace(world: World) -> None:
    team = world.api.post("/v1/api-keys", json={"label": "team", "type": "team", "role": "viewer"}).json()["key"]
    client = signed_in(world.server.url, team)
    answer = client.get("/dashboard/queues/mail")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/dashboard/workspaces?next=")
    chooser = client.get(answer.headers["location"])
    workspace = re.search(r'name="workspace" id="ws-1" value="([^"]+)"', chooser.text)
    assert workspace
    chosen = client.post("/dashboard/workspaces", data={"csrf": csrf_of(chooser.text), "workspace": workspace.group(1),
                                                        "next": "/dashboard/queues/mail"})
    assert chosen.headers["location"] == "/dashboard/queues/mail"
    assert client.get("/dashboard/queues/mail").status_code == 200


# Escaping ----------------------------------------------------------------------------------------


def test_user_data_is_shown_as_text_never_as_markup(world: World, admin: httpx.Client) -> None:
    """A `<script>` in payloads (a job's, a schedule's, a run's event), tags, an error, a reason and a key label."""
    post_form(admin, "/dashboard/approvals", f"/dashboard/approvals/{world.ids['approval']}/reject", reason=SCRIPT)
    post_form(admin, "/dashboard/api-keys", "/dashboard/api-keys", label=SCRIPT, role="viewer")
    pages = [
        "/dashboard/queues/mail", f"/dashboard/queues/mail/jobs/{world.ids['job']}", f"/dashboard/queues/mail?tag={SCRIPT}",
        f"/dashboard/queues/broken/jobs/{world.ids['failed']}", "/dashboard/dlq",
        f"/dashboard/schedules/{world.ids['schedule']}", "/dashboard/approvals?status=rejected",
        f"/dashboard/runs/{world.ids['run']}", "/dashboard/approvals", "/dashboard/api-keys", "/dashboard/audit",
    ]
    for path in pages:
        text = admin.get(path).text
        assert "<script>alert" not in text, path
        assert ESCAPED in text, path


# Roles -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "allowed"), [
    ("viewer", r"/dashboard/(logout|workspaces)"),  # signing out and choosing a workspace change no data
    ("approver", r"/dashboard/(logout|workspaces|approvals/[^/]+/(approve|reject)|signals/decide)"),
    ("developer", r"/dashboard/(?!api-keys).*"),
])
def test_a_key_is_shown_no_button_its_role_may_not_press(world: World, role: str, allowed: str) -> None:
    client = signed_in(world.server.url, role_key(world.server, role))
    for path in world.pages():
        answer = client.get(path)
        assert answer.status_code in (200, 403), (path, answer.status_code)
        wrong = [action for action in post_actions(answer.text) if not re.fullmatch(allowed, action)]
        assert wrong == [], (role, path)


def test_a_viewer_is_refused_what_the_api_refuses_and_not_shown_its_pages(world: World) -> None:
    viewer = signed_in(world.server.url, role_key(world.server, "viewer"))
    overview = viewer.get("/dashboard").text
    assert 'href="/dashboard/settings/secrets"' not in overview and 'href="/dashboard/api-keys"' not in overview
    assert 'href="/dashboard/audit"' in overview
    assert viewer.get("/dashboard/settings/secrets").status_code == 403  # GET /v1/secrets needs a developer
    refused = post_form(viewer, "/dashboard", "/dashboard/queues/mail/pause")
    assert refused.status_code == 403
    assert world.api.get("/v1/queues/mail").json()["state"] == "active"
    forbidden = world.api.get("/v1/audit", params={"event_type": "auth.forbidden"}).json()["data"]
    assert any(e["metadata"]["path"] == "/dashboard/queues/mail/pause" for e in forbidden)


# Actions -----------------------------------------------------------------------------------------


def test_actions_are_audited_as_the_api_routes_they_mirror(world: World, admin: httpx.Client) -> None:
    world.api.post("/v1/queues", json={"name": "audited"})
    answer = post_form(admin, "/dashboard/queues/audited", "/dashboard/queues/audited/pause")
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard/queues/audited"
    assert world.api.get("/v1/queues/audited").json()["state"] == "paused"
    [event] = world.api.get("/v1/audit", params={"event_type": "queue.paused"}).json()["data"][:1]
    assert event["resource_id"] == "audited"
    assert event["metadata"] == {"method": "POST", "path": "/v1/queues/audited/pause", "via": "dashboard"}
    assert "queue &#39;audited&#39; paused" in admin.get("/dashboard/queues/audited").text  # the notice, shown once
    assert "paused</div>" not in admin.get("/dashboard/queues/audited").text


def test_a_refused_action_says_why_and_changes_nothing(world: World, admin: httpx.Client) -> None:
    world.api.post("/v1/queues", json={"name": "backlog"})  # no callback URL: its jobs wait
    world.api.post("/v1/queues/backlog/jobs", json={"payload": {}})
    answer = post_form(admin, "/dashboard/queues/backlog", "/dashboard/queues/backlog/drain")  # not confirmed
    assert answer.status_code == 303
    assert "send {&#34;confirm&#34;: true}" in admin.get("/dashboard/queues/backlog").text
    assert world.api.get("/v1/queues/backlog").json()["counts"]["waiting"] == 1
    drained = post_form(admin, "/dashboard/queues/backlog", "/dashboard/queues/backlog/drain", confirm="yes")
    assert drained.status_code == 303 and world.api.get("/v1/queues/backlog").json()["counts"]["waiting"] == 0


def test_the_cron_preview_answers_as_the_api_does(admin: httpx.Client) -> None:
    good = admin.get("/dashboard/schedules/preview", params={"cron": "30 8 * * 1", "timezone": "asia/tokyo"}).json()
    assert good["description"] and len(good["next"]) == 5 and good["next"][0]["zoned"].endswith("JST")
    bad = admin.get("/dashboard/schedules/preview", params={"cron": "99 * * * *", "timezone": "UTC"})
    assert bad.status_code == 422 and bad.json()["error"]


def test_a_session_outlives_a_restart_of_the_server(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path / "data").start()
    try:
        client = signed_in(server.url, server.api_key)
        server.kill()
        server.start()
        assert client.get("/dashboard").status_code == 200  # the session lives in its cookie, not in the process
    finally:
        server.kill()


@pytest.mark.postgres_only
def test_a_session_made_on_one_node_is_answered_by_another(tmp_path: Path) -> None:
    master = {"ROTOR_SECURITY_MASTER_KEY": base64.b64encode(bytes(range(32))).decode()}
    node_a = ServerProcess(data_dir=tmp_path / "a", env=master).start()
    node_b = ServerProcess(data_dir=tmp_path / "b", env=master, storage_url=storage_url_of(node_a.data_dir)).start()
    try:
        on_a = signed_in(node_a.url, node_a.api_key)
        cookie = on_a.cookies["rotor_session"]
        with httpx.Client(base_url=node_b.url, cookies={"rotor_session": cookie}, follow_redirects=False) as on_b:
            page = on_b.get("/dashboard")
            assert page.status_code == 200, page.text
            paused = on_b.post("/dashboard/logout", data={"csrf": csrf_of(page.text)})
            assert paused.status_code == 303  # signed out on B (its CSRF token came from the cookie made on A)
        assert on_a.get("/dashboard").status_code == 303  # and A refuses the cookie from then on
    finally:
        node_a.kill()
        node_b.kill()
