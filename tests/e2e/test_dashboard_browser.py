"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against a real server.

Each test signs in, does what a person would, checks the outcome through the API, and leaves a
screenshot in its temporary directory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.dashboard_kit import SCRIPT, lead_score, onboard_contact
from tests.e2e.workflow_kit import WorkflowEnv, role_key
from tests.helpers import Receiver, Reply, ServerProcess, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium: apt-get install chromium")


class Site:
    """The module's server, its callback receiver, a workflow app, and an API client."""

    def __init__(self, server: ServerProcess, receiver: Receiver, workflows: WorkflowEnv) -> None:
        self.server, self.receiver, self.workflows = server, receiver, workflows
        self.api = server.client()

    def queue(self, name: str, **settings: object) -> None:
        answer = self.api.post("/v1/queues", json={"name": name, "callback_url": self.receiver.url(f"/{name}"), **settings})
        assert answer.status_code == 201, answer.text

    def enqueue(self, queue: str, payload: object) -> dict[str, str]:
        answer = self.api.post(f"/v1/queues/{queue}/jobs", json={"payload": payload})
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def job(self, queue: str, job_id: str) -> dict[str, object]:
        return dict(self.api.get(f"/v1/queues/{queue}/jobs/{job_id}").json())


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    server = ServerProcess(data_dir=tmp_path_factory.mktemp("browser") / "data").start()
    with Receiver() as receiver:
        workflows = WorkflowEnv(server)
        workflows.serve([onboard_contact, lead_score])
        try:
            yield Site(server, receiver, workflows)
        finally:
            workflows.close()
            server.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, site: Site, tmp_path: Path) -> Iterator[Page]:
    """A fresh browser context (no cookies) on the site; its screenshot is saved when the test ends."""
    context = browser.new_context(base_url=site.server.url, viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    yield opened
    opened.screenshot(path=str(tmp_path / "screenshot.png"), full_page=True)
    context.close()


def sign_in(page: Page, key: str, target: str = "/dashboard") -> None:
    page.goto(target)
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/dashboard.*"))


def test_sign_in_and_watch_the_counts_change_without_a_reload(page: Page, site: Site, tmp_path: Path) -> None:
    site.api.post("/v1/queues", json={"name": "inbox"})  # no callback: its jobs wait
    sign_in(page, site.server.api_key)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    waiting = page.locator('[data-count="inbox"][data-state="waiting"]')
    expect(waiting).to_have_text("0")
    site.enqueue("inbox", {"n": 1})
    site.enqueue("inbox", {"n": 2})
    expect(waiting).to_have_text("2")  # over server-sent events, no reload
    page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(tmp_path / "overview-375.png"), full_page=True)


def test_approve_a_pending_job_with_the_keyboard(page: Page, site: Site) -> None:
    site.queue("gate", approval_required=True)
    job = site.enqueue("gate", {"subject": "Q3 offer", "to": "ada@example.com"})
    sign_in(page, site.server.api_key, "/dashboard/approvals")
    expect(page.get_by_text(job["id"])).to_be_visible()
    page.keyboard.press("j")  # the newest pending approval
    page.keyboard.press("a")
    expect(page.get_by_role("status")).to_contain_text(f"approved job {job['id']}")
    wait_until(lambda: site.job("gate", job["id"])["state"] == "completed")


def test_reject_a_job_with_a_reason(page: Page, site: Site) -> None:
    job = site.enqueue("gate", {"subject": "too pushy"})
    sign_in(page, site.server.api_key, "/dashboard/approvals")
    page.keyboard.press("j")
    page.keyboard.press("r")  # to the reason field of the selected approval
    page.keyboard.type("tone is off")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text(f"rejected job {job['id']}")
    stored = site.job("gate", job["id"])
    assert stored["state"] == "failed" and stored["failReason"] == "rejected"
    approval = site.api.get(f"/v1/approvals/{stored['approvalId']}").json()
    assert approval["status"] == "rejected" and approval["reason"] == "tone is off"


def test_retry_a_failed_job_and_see_it_complete(page: Page, site: Site) -> None:
    site.receiver.script("/flaky", Reply(status=500, body=b'{"error": "upstream down"}'))
    site.queue("flaky", retry_attempts=1)
    job = site.enqueue("flaky", {"order": 42})
    wait_until(lambda: site.job("flaky", job["id"])["state"] == "failed")
    sign_in(page, site.server.api_key, f"/dashboard/queues/flaky/jobs/{job['id']}")  # where a failure alert links
    expect(page.locator("h1 .badge")).to_have_text("failed")
    expect(page.get_by_role("cell", name="500", exact=True)).to_be_visible()
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_contain_text("job back to waiting")

    def completed() -> bool:
        page.reload()
        return page.locator("h1 .badge").inner_text() == "completed"

    wait_until(completed, timeout=15, interval=0.3)


def test_replay_the_dlq(page: Page, site: Site) -> None:
    site.receiver.script("/dead", *[Reply(status=503, body=b"maintenance")] * 3)
    site.queue("dead", retry_attempts=1)
    jobs = [site.enqueue("dead", {"n": n})["id"] for n in range(3)]
    wait_until(lambda: all(site.job("dead", j)["state"] == "failed" for j in jobs))
    sign_in(page, site.server.api_key, "/dashboard/dlq?queue=dead")
    page.get_by_label("Select every job on this page").check()
    page.get_by_role("button", name="Replay the selected jobs").click()
    expect(page.get_by_role("status")).to_contain_text("3 failed jobs back to waiting")
    wait_until(lambda: all(site.job("dead", j)["state"] == "completed" for j in jobs), timeout=15)


def test_cancel_a_workflow_run_and_see_its_graph(page: Page, site: Site, tmp_path: Path) -> None:
    run_id = site.workflows.send("contact.created", {"name": "Ada Lovelace"})["runIds"][0]
    site.workflows.wait_status(run_id, "waiting")
    sign_in(page, site.server.api_key, f"/dashboard/runs/{run_id}")
    graph = page.locator("figure.graph svg")
    parallel = [graph.locator("a.node", has_text=name) for name in ("enrich-email", "enrich-phone", "score-lead")]
    tops = {round(node.bounding_box()["y"]) for node in parallel}
    lefts = [node.bounding_box()["x"] for node in parallel]
    assert len(tops) == 1 and len(set(lefts)) == 3  # started together: one row, side by side
    child = graph.locator("a.node", has_text="score-lead")
    assert re.fullmatch(r"/dashboard/runs/run_\w+", child.get_attribute("href") or "")  # the invoked run, linked
    gate = graph.locator("a.node", has_text="approval-gate")  # a waiting step: its signal and its timeout
    assert f"waiting, signal approve-{run_id} until 20" in (gate.get_attribute("aria-label") or "")
    page.screenshot(path=str(tmp_path / "run-graph.png"), full_page=True)
    page.get_by_role("button", name="Cancel the run").click()
    expect(page.locator("h1 .badge")).to_have_text("cancelled")
    expect(graph.locator('a.node[href="#outcome"]')).to_have_class(re.compile("s-cancelled"))  # how the run ended
    expect(gate).to_have_class(re.compile("s-cancelled"))  # the step it waited in
    assert site.workflows.run(run_id)["status"] == "cancelled"


def test_create_a_key_and_revoke_it(page: Page, site: Site) -> None:
    sign_in(page, site.server.api_key, "/dashboard/api-keys")
    page.get_by_label("Label").fill("ci-bot")
    page.get_by_label("Role").select_option("developer")
    page.get_by_role("button", name="Create").click()
    key = page.locator(".flash.key code").inner_text()  # shown once
    assert key.startswith("rt_ws_")
    with httpx.Client(base_url=site.server.url, headers={"Authorization": f"Bearer {key}"}) as api:
        assert api.get("/v1/queues").status_code == 200
        page.on("dialog", lambda dialog: dialog.accept())  # "Revoke the key ci-bot now?"
        page.get_by_role("button", name="Revoke ci-bot").click()
        expect(page.get_by_role("status")).to_contain_text("revoked")
        refused = api.get("/v1/queues")
    assert refused.status_code == 401 and "revoked" in refused.text
    page.reload()
    assert ".flash.key" not in page.content()  # never shown again


def test_a_viewer_sees_no_write_buttons(page: Page, site: Site) -> None:
    site.api.post("/v1/queues", json={"name": "watched"})
    job = site.enqueue("watched", {"n": 1})
    sign_in(page, role_key(site.server, "viewer"))
    for path in ("/dashboard", "/dashboard/queues/watched", f"/dashboard/queues/watched/jobs/{job['id']}",
                 "/dashboard/dlq", "/dashboard/approvals", "/dashboard/runs", "/dashboard/schedules",
                 "/dashboard/webhooks", "/dashboard/guardrails", "/dashboard/settings/notifications", "/dashboard/audit"):
        page.goto(path)
        buttons = page.locator("form[method=post] button").all_inner_texts()
        assert buttons == ["Sign out"], (path, buttons)
    nav = page.get_by_role("navigation", name="Main").inner_text()
    assert "API keys" not in nav and "Secrets" not in nav and "Audit" in nav


INJECTED = "[...document.querySelectorAll('script')].filter(el => !el.src).length"  # the page's own script has a src


def test_user_data_is_shown_as_text_and_never_runs(page: Page, site: Site) -> None:
    """A `<script>` in a job's and a schedule's payload, tags, a callback's error, a key's name, a rejection's reason
    and a run's event: each page shows it as text, and no script element comes of it (nor any dialog)."""
    site.receiver.script("/hostile", Reply(status=500, body=f'{{"error": "{SCRIPT}"}}'.encode()))
    site.queue("hostile", retry_attempts=1)
    site.queue("hostile-gate", approval_required=True)
    job = site.api.post("/v1/queues/hostile/jobs", json={"payload": {"note": SCRIPT}, "tags": [SCRIPT]}).json()
    held = site.enqueue("hostile-gate", {"subject": SCRIPT})
    site.api.post(f"/v1/approvals/{held['approvalId']}/reject", json={"reason": SCRIPT}).raise_for_status()
    schedule = site.api.post("/v1/schedules", json={"queue": "hostile", "cron": "0 9 * * 1-5", "timezone": "UTC",
                                                    "payload": {"note": SCRIPT}}).json()
    site.api.post("/v1/api-keys", json={"label": SCRIPT, "role": "viewer"}).raise_for_status()
    run_id = site.workflows.send("contact.created", {"name": SCRIPT})["runIds"][0]
    wait_until(lambda: site.job("hostile", job["id"])["state"] == "failed")
    site.workflows.wait_status(run_id, "waiting")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, site.server.api_key)
    for path in ("/dashboard/queues/hostile", f"/dashboard/queues/hostile/jobs/{job['id']}", "/dashboard/dlq",
                 "/dashboard/approvals?status=rejected", f"/dashboard/schedules/{schedule['id']}", "/dashboard/api-keys",
                 f"/dashboard/runs/{run_id}", "/dashboard/audit"):
        page.goto(path)
        expect(page.get_by_text(SCRIPT).first).to_be_visible()
        assert page.evaluate(INJECTED) == 0, path
    assert dialogs == []


UNLABELLED = """[...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
  .filter(el => el.tagName === 'BUTTON' ? !(el.innerText.trim() || el.getAttribute('aria-label'))
                                        : !((el.labels && el.labels.length) || el.getAttribute('aria-label')))
  .map(el => el.outerHTML.slice(0, 120))"""


# Text whose colour against the first opaque background behind it is under WCAG AA: 4.5:1, or 3:1 for large text
# (24 px, or 18.66 px bold). The graph's SVG text is left out (its nodes' text is also their aria-label).
LOW_CONTRAST = """(() => {
  const rgba = s => s.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(c => (c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4)
                                      .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
  const backdrop = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  return [...document.querySelectorAll('body *')]
    .filter(el => !el.closest('svg') && el.getClientRects().length
                  && [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()))
    .map(el => {
      const style = getComputedStyle(el), size = parseFloat(style.fontSize);
      const [hi, lo] = [lum(rgba(style.color)), lum(backdrop(el))].sort((a, b) => b - a);
      const ratio = (hi + 0.05) / (lo + 0.05);
      const large = size >= 24 || (parseInt(style.fontWeight) >= 700 && size >= 18.66);
      return ratio < (large ? 3 : 4.5) ? `${el.tagName} ${ratio.toFixed(2)} ${el.textContent.trim().slice(0, 40)}` : '';
    })
    .filter(Boolean);
})()"""


def test_every_control_is_labelled_text_has_aa_contrast_focus_is_visible_and_pages_fit_375_px(
    page: Page, site: Site, tmp_path: Path,
) -> None:
    site.queue("a11y", approval_required=True)
    job = site.enqueue("a11y", {"n": 1})
    schedule = site.api.post("/v1/schedules", json={"queue": "a11y", "cron": "*/5 * * * *", "timezone": "UTC"}).json()
    run_id = site.workflows.send("contact.created", {"name": "Grace"})["runIds"][0]
    site.workflows.wait_status(run_id, "waiting")
    sign_in(page, site.server.api_key)
    page.set_viewport_size({"width": 375, "height": 740})
    paths = ["/dashboard", "/dashboard/queues/a11y", f"/dashboard/queues/a11y/jobs/{job['id']}", "/dashboard/dlq",
             "/dashboard/approvals", "/dashboard/runs", f"/dashboard/runs/{run_id}", "/dashboard/schedules",
             f"/dashboard/schedules/{schedule['id']}", "/dashboard/webhooks", "/dashboard/settings/secrets",
             "/dashboard/guardrails", "/dashboard/api-keys", "/dashboard/settings/notifications", "/dashboard/audit"]
    for number, path in enumerate(paths):
        page.goto(path)
        assert page.evaluate(UNLABELLED) == [], path
        assert page.evaluate(LOW_CONTRAST) == [], path
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path  # tables scroll inside
        page.screenshot(path=str(tmp_path / f"375-{number:02}.png"), full_page=True)
    page.keyboard.press("Tab")  # the skip link comes first, and shows where focus is
    assert page.evaluate("document.activeElement.textContent") == "Skip to the content"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    assert page.evaluate("parseFloat(getComputedStyle(document.activeElement).outlineWidth)") >= 2
