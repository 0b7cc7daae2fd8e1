"""Approvals end to end: the gate, decisions, 409s, cancel, webhooks, audit, roles, SDK and CLI."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from click.testing import CliRunner

from rotor_lite.cli import main
from rotor_lite.sdk import Rotor, RotorConflict, RotorNotFound
from tests.helpers import Receiver, ServerProcess, offline, wait_until

FAST = {"ROTOR_WEBHOOKS_RETRY_SCHEDULE": "0s,50ms", "ROTOR_WEBHOOKS_POLL_INTERVAL": "50ms"}


@pytest.fixture
def fast_server(make_server: Callable[..., ServerProcess]) -> ServerProcess:
    return make_server(**FAST)


def _gated_queue(http: httpx.Client, receiver: Receiver, name: str = "ai-outreach") -> None:
    created = http.post("/v1/queues", json={"name": name, "callback_url": receiver.url(f"/{name}"), "approval_required": True})
    assert created.status_code == 201, created.text
    assert created.json()["approval_required"] is True


def _key(server: ServerProcess, role: str) -> str:
    return str(offline(server.data_dir, "keys", "create", "--workspace", "default", "--role", role)["key"])


def test_approve_releases_the_job_and_reject_fails_it_for_good(fast_server: ServerProcess, receiver: Receiver) -> None:
    with fast_server.client() as http:
        _gated_queue(http, receiver)
        job = http.post("/v1/queues/ai-outreach/jobs", json={"payload": {"subject": "Hi"}}).json()
        assert job["state"] == "pending_approval" and job["approvalId"].startswith("apv_") and len(job["approvalId"]) == 36
        listed = http.get("/v1/approvals", params={"status": "pending"}).json()
        assert listed["nextCursor"] is None
        [approval] = listed["approvals"]
        assert approval == {
            "id": job["approvalId"], "jobId": job["id"], "queueName": "ai-outreach", "payload": {"subject": "Hi"},
            "status": "pending", "createdAt": approval["createdAt"], "decidedAt": None, "decidedBy": None, "reason": None,
        }
        assert receiver.for_path("/ai-outreach") == []
        decided = http.post(f"/v1/approvals/{job['approvalId']}/approve")
        assert decided.status_code == 200 and decided.json()["status"] == "approved"
        assert decided.json()["decidedBy"].startswith("key_") and decided.json()["decidedAt"]
        wait_until(lambda: receiver.for_path("/ai-outreach"))
        assert http.post(f"/v1/approvals/{job['approvalId']}/approve").status_code == 409
        assert http.post(f"/v1/approvals/{job['approvalId']}/reject").json()["error"]["code"] == "CONFLICT"

        other = http.post("/v1/queues/ai-outreach/jobs", json={"payload": {"subject": "Buy now"}}).json()
        rejected = http.post(f"/v1/approvals/{other['approvalId']}/reject", json={"reason": "too pushy"}).json()
        assert rejected["status"] == "rejected" and rejected["reason"] == "too pushy"
        failed = http.get(f"/v1/queues/ai-outreach/jobs/{other['id']}").json()
        assert failed["state"] == "failed" and failed["failReason"] == "rejected" and failed["attemptLog"] == []
        assert http.post(f"/v1/queues/ai-outreach/jobs/{other['id']}/retry").status_code == 409
        assert http.post("/v1/queues/ai-outreach/retry-all").json() == {"retried": 0}
        assert http.post("/v1/dlq/replay", json={"queue": "ai-outreach"}).json() == {"replayed": 0}
        assert http.post(f"/v1/approvals/{other['approvalId']}/approve").status_code == 409
    assert len(receiver.for_path("/ai-outreach")) == 1


def test_list_filters_pages_and_validates(fast_server: ServerProcess, receiver: Receiver) -> None:
    with fast_server.client() as http:
        _gated_queue(http, receiver, "a")
        _gated_queue(http, receiver, "b")
        batch = http.post("/v1/queues/a/jobs/batch", json={"jobs": [{"payload": {"n": i}} for i in range(5)]}).json()
        assert [j["state"] for j in batch["data"]] == ["pending_approval"] * 5
        assert len({j["approvalId"] for j in batch["data"]}) == 5
        b_job = http.post("/v1/queues/b/jobs", json={"payload": {"n": "b"}}).json()
        http.post(f"/v1/approvals/{b_job['approvalId']}/approve")

        assert len(http.get("/v1/approvals").json()["approvals"]) == 6
        assert len(http.get("/v1/approvals", params={"queue": "a"}).json()["approvals"]) == 5
        assert [a["jobId"] for a in http.get("/v1/approvals", params={"status": "approved"}).json()["approvals"]] == [b_job["id"]]
        seen, cursor = [], None
        while True:
            page = http.get("/v1/approvals", params={"queue": "a", "limit": 2, **({"cursor": cursor} if cursor else {})}).json()
            seen += [a["payload"]["n"] for a in page["approvals"]]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert seen == [4, 3, 2, 1, 0]  # newest first, each once

        for params in ({"status": "maybe"}, {"limit": 0}, {"limit": 501}, {"cursor": "!!"}):
            error = http.get("/v1/approvals", params=params)
            assert error.status_code == 422 and error.json()["error"]["code"] == "VALIDATION_ERROR", params
        assert http.get("/v1/approvals", params={"queue": "nope"}).status_code == 404
        assert http.get("/v1/approvals/apv_00000000000000000000000000000000").status_code == 404
        assert http.post("/v1/approvals/apv_00000000000000000000000000000000/approve").status_code == 404
        assert http.post(f"/v1/approvals/{b_job['approvalId']}/reject", json={"bogus": 1}).status_code == 422
        pending = http.get("/v1/approvals", params={"status": "pending"}).json()["approvals"][0]
        too_long = http.post(f"/v1/approvals/{pending['id']}/reject", json={"reason": "x" * 2001})
        assert too_long.status_code == 422
        assert http.get(f"/v1/approvals/{pending['id']}").json()["status"] == "pending"


def test_cancel_closes_the_approval_and_guardrails_run_first(fast_server: ServerProcess, receiver: Receiver) -> None:
    with fast_server.client() as http:
        _gated_queue(http, receiver)
        job = http.post("/v1/queues/ai-outreach/jobs", json={"payload": {"to": "x@ok.com"}}).json()
        cancelled = http.delete(f"/v1/queues/ai-outreach/jobs/{job['id']}").json()
        assert cancelled["state"] == "cancelled"
        closed = http.get(f"/v1/approvals/{job['approvalId']}").json()
        assert closed["status"] == "rejected" and closed["reason"] == "job cancelled"
        assert http.post(f"/v1/approvals/{job['approvalId']}/approve").status_code == 409

        http.post("/v1/guardrails/dnc", json={"emails": ["blocked@dnc.com"]})
        blocked = http.post("/v1/queues/ai-outreach/jobs", json={"payload": {"to": "blocked@dnc.com"}}).json()
        assert blocked["state"] == "guardrail.blocked" and blocked["approvalId"] is None
        assert http.get("/v1/approvals", params={"status": "pending"}).json()["approvals"] == []
        http.delete("/v1/guardrails/dnc/emails/blocked@dnc.com")
        retried = http.post(f"/v1/queues/ai-outreach/jobs/{blocked['id']}/retry").json()
        assert retried["state"] == "pending_approval" and retried["approvalId"].startswith("apv_")

        http.patch("/v1/queues/ai-outreach", json={"approval_required": False})
        direct = http.post("/v1/queues/ai-outreach/jobs", json={"payload": {"n": 1}}).json()
        assert direct["state"] == "waiting" and direct["approvalId"] is None


def test_webhooks_and_audit_name_who_decided(fast_server: ServerProcess, receiver: Receiver) -> None:
    with fast_server.client() as http:
        hook = http.post("/v1/webhooks", json={
            "url": receiver.url("/wh"), "eventTypes": ["approval.pending", "approval.approved", "approval.rejected"],
        })
        assert hook.status_code == 201, hook.text
        _gated_queue(http, receiver)
        first = http.post("/v1/queues/ai-outreach/jobs", json={"payload": {"contactId": "cid_1"}}).json()
        second = http.post("/v1/queues/ai-outreach/jobs", json={"payload": {"contactId": "cid_2"}}).json()
        approved = http.post(f"/v1/approvals/{first['approvalId']}/approve").json()
        http.post(f"/v1/approvals/{second['approvalId']}/reject", json={"reason": "off brand"})
        events = wait_until(lambda: len(receiver.for_path("/wh")) >= 4 and receiver.for_path("/wh"))
        audit = http.get("/v1/audit", params={"resource_type": "approval"}).json()["data"]

    data = {(e.json()["type"], e.json()["data"].get("jobId")): e.json()["data"] for e in events}
    workspace = data[("approval.pending", first["id"])]["workspaceId"]
    assert data[("approval.pending", first["id"])] == {
        "approvalId": first["approvalId"], "jobId": first["id"], "queueName": "ai-outreach",
        "payload": {"contactId": "cid_1"}, "workspaceId": workspace,
    }
    assert data[("approval.approved", first["id"])] == {
        "approvalId": first["approvalId"], "jobId": first["id"], "queueName": "ai-outreach",
        "decidedBy": approved["decidedBy"], "reason": None,
    }
    assert data[("approval.rejected", second["id"])]["reason"] == "off brand"
    decisions = {e["event_type"]: e for e in audit if e["event_type"] in ("approval.approved", "approval.rejected")}
    assert decisions["approval.approved"]["actor_id"] == approved["decidedBy"]
    assert decisions["approval.approved"]["resource_id"] == first["approvalId"]
    assert decisions["approval.rejected"]["metadata"]["reason"] == "off brand"
    assert len([e for e in audit if e["event_type"] == "approval.approved"]) == 1  # not also by the middleware


def test_roles_and_queue_scope(fast_server: ServerProcess, receiver: Receiver) -> None:
    with fast_server.client() as http:
        _gated_queue(http, receiver)
        job = http.post("/v1/queues/ai-outreach/jobs", json={"payload": {}}).json()
    with fast_server.client(_key(fast_server, "viewer")) as viewer:
        assert viewer.get("/v1/approvals").status_code == 200
        assert viewer.post(f"/v1/approvals/{job['approvalId']}/approve").status_code == 403
    with fast_server.client(_key(fast_server, "approver")) as approver:
        assert approver.post("/v1/queues", json={"name": "nope"}).status_code == 403
        assert approver.post(f"/v1/approvals/{job['approvalId']}/approve").status_code == 200


def test_sdk_and_cli(fast_server: ServerProcess, receiver: Receiver) -> None:
    with Rotor(api_key=fast_server.api_key, base_url=fast_server.url) as rotor:
        rotor.queues.create("ai-outreach", callback_url=receiver.url("/ai"), approval_required=True)
        jobs = [rotor.jobs.enqueue("ai-outreach", {"subject": f"Quick question {i}", "body": "x" * 200}) for i in range(3)]
        page = rotor.approvals.list(status="pending", queue="ai-outreach", limit=50)
        assert {a["jobId"] for a in page["approvals"]} == {j["id"] for j in jobs}
        assert rotor.approvals.get(jobs[0]["approvalId"])["payload"]["subject"] == "Quick question 0"
        assert rotor.approvals.approve(jobs[0]["approvalId"])["status"] == "approved"
        with pytest.raises(RotorConflict):
            rotor.approvals.approve(jobs[0]["approvalId"])
        with pytest.raises(RotorNotFound):
            rotor.approvals.get("apv_00000000000000000000000000000000")

    runner = CliRunner()
    base = ["--api-url", fast_server.url, "--api-key", fast_server.api_key]
    listed = runner.invoke(main, ["approvals", "list", "--status", "pending", *base])
    assert listed.exit_code == 0, listed.output
    assert jobs[1]["approvalId"] in listed.output and "PAYLOAD" in listed.output
    assert '{"subject":"Quick question 1"' in listed.output and "x" * 100 not in listed.output  # a short preview
    shown = runner.invoke(main, ["approvals", "get", jobs[1]["approvalId"], *base])
    assert shown.exit_code == 0 and "Quick question 1" in shown.output
    rejected = runner.invoke(main, ["approvals", "reject", jobs[1]["approvalId"], "--reason", "tone", "--json", *base])
    assert rejected.exit_code == 0 and json.loads(rejected.output)["reason"] == "tone"
    approved = runner.invoke(main, ["approvals", "approve", jobs[2]["approvalId"], *base])
    assert approved.exit_code == 0 and f"job {jobs[2]['id']} is waiting" in approved.output
    again = runner.invoke(main, ["approvals", "approve", jobs[2]["approvalId"], *base])
    assert again.exit_code == 1 and "CONFLICT" in again.output
    wait_until(lambda: len(receiver.for_path("/ai")) == 2)
