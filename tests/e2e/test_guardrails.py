"""Guardrails end to end: config, DNC, competitor, PII, the brand-tone judge (a fake LLM on loopback),
blocked jobs, retries, statistics, webhooks, SDK and CLI."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from rotor_lite.cli import main
from rotor_lite.sdk import Rotor, RotorValidationError
from tests.e2e.fake_llm import FakeLLM
from tests.helpers import Receiver, ServerProcess, wait_until

RUBRIC = "Professional and helpful. Avoid phrases like 'Act now', 'Limited time', 'Don't miss out'."
FAST = {"ROTOR_WEBHOOKS_RETRY_SCHEDULE": "0s,50ms", "ROTOR_WEBHOOKS_POLL_INTERVAL": "50ms",
        "ROTOR_GUARDRAILS_BRAND_TONE_POLL_INTERVAL": "100ms"}


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


def _judged_server(make_server: Callable[..., ServerProcess], llm: FakeLLM, **env: str) -> ServerProcess:
    settings = {"ROTOR_GUARDRAILS_BRAND_TONE_BASE_URL": llm.url, "ROTOR_GUARDRAILS_BRAND_TONE_API_KEY": "sk-test",
                "ROTOR_GUARDRAILS_BRAND_TONE_TIMEOUT": "500ms"}
    return make_server(**{**FAST, **settings, **env})


def _queue(http: httpx.Client, receiver: Receiver, name: str = "ai-outreach", **extra: object) -> None:
    created = http.post("/v1/queues", json={"name": name, "callback_url": receiver.url(f"/{name}"), **extra})
    assert created.status_code == 201, created.text


def _enqueue(http: httpx.Client, payload: object, queue: str = "ai-outreach") -> dict:
    response = http.post(f"/v1/queues/{queue}/jobs", json={"payload": payload})
    assert response.status_code == 201, response.text
    return response.json()


def test_config_roundtrip_and_validation(server: ServerProcess) -> None:
    with server.client() as http:
        first = http.get("/v1/guardrails").json()
        assert first["id"].startswith("grc_") and first["dncEmails"] == [] and first["piiMode"] == "redact"
        assert first["piiTypes"] == ["email", "phone", "ssn", "card"] and first["brandToneJudgeEnabled"] is False
        updated = http.patch("/v1/guardrails", json={
            "dncEmails": ["Alice@Example.com", "bob@example.com", "alice@example.com"], "dnc_domains": ["noemail.example.org"],
            "competitorDomains": ["rivalcrm.com", "othertool.io"], "piiRedactionEnabled": True, "piiMode": "block",
            "piiTypes": ["phone"], "brandToneJudgeEnabled": True, "brandToneRubric": RUBRIC, "brandToneThreshold": 0.5,
        }).json()
        assert updated["id"] == first["id"]
        assert updated["dncEmails"] == ["alice@example.com", "bob@example.com"] and updated["dncEmailsCount"] == 2
        assert updated["dncDomains"] == ["noemail.example.org"] and updated["competitorDomains"] == ["rivalcrm.com", "othertool.io"]
        assert (updated["piiMode"], updated["piiTypes"], updated["brandToneThreshold"]) == ("block", ["phone"], 0.5)
        assert http.get("/v1/guardrails").json() == updated
        replaced = http.patch("/v1/guardrails", json={"dncEmails": ["carol@example.com"]}).json()
        assert replaced["dncEmails"] == ["carol@example.com"] and replaced["dncDomains"] == ["noemail.example.org"]

        bad = [
            {"dncEmails": ["not-an-email"]}, {"dncDomains": ["no spaces.com"]}, {"competitorDomains": ["localhost"]},
            {"piiTypes": ["dna"]}, {"piiMode": "shout"}, {"brandToneThreshold": 1.5}, {"unknownField": 1},
            {"brandToneRubric": "", "brandToneJudgeEnabled": True}, {"brandToneRubric": "x" * 10_001},
            {"competitorDomains": [f"c{i}.com" for i in range(10_001)]},
        ]
        for body in bad:
            error = http.patch("/v1/guardrails", json=body)
            assert error.status_code == 422 and error.json()["error"]["code"] == "VALIDATION_ERROR", body
        assert http.get("/v1/guardrails").json() == replaced
        assert http.post("/v1/guardrails/dnc", json={}).status_code == 422
        assert http.post("/v1/guardrails/dnc", json={"emails": ["x@y.com"] * 100_001}).status_code == 422
        assert http.delete("/v1/guardrails/dnc/emails/nobody@example.com").status_code == 404
        assert http.delete("/v1/guardrails/dnc/domains/noemail.example.org").status_code == 204
        assert http.get("/v1/guardrails/stats", params={"days": 0}).status_code == 422


def test_dnc_competitor_and_pii_stages(server: ServerProcess, receiver: Receiver) -> None:
    with server.client() as http:
        _queue(http, receiver)
        http.patch("/v1/guardrails", json={
            "dncEmails": ["alice@example.com"], "dncDomains": ["noemail.example.org"], "competitorDomains": ["rivalcrm.com"],
            "piiRedactionEnabled": True, "piiMode": "redact",
        })
        cases = {
            "dnc email, any case": ({"to": "ALICE@Example.COM"}, "dnc", "Email address matched DNC list"),
            "dnc email after an escape": ({"body": "line\nalice@example.com"}, "dnc", "Email address matched DNC list"),
            "dnc subdomain": ({"to": "x@mail.noemail.example.org"}, "dnc", "Email domain matched DNC list: noemail.example.org"),
            "competitor subdomain": ({"body": "see www.rivalcrm.com"}, "competitor", "Payload references competitor domain rivalcrm.com"),
            "competitor in an address": ({"cc": "x@rivalcrm.com"}, "competitor", None),
            "competitor in a url": ({"u": "https://rivalcrm.com/pricing"}, "competitor", None),
        }
        for name, (payload, stage, reason) in cases.items():
            job = _enqueue(http, payload)
            assert (job["state"], job["blockedBy"]) == ("guardrail.blocked", stage), name
            assert reason is None or job["blockReason"] == reason, name
            assert job["payload"] == payload and job["finishedAt"], name
        for payload in ({"body": "notrivalcrm.com"}, {"to": "bob@example.com"}, {"site": "rivalcrm.com.au"}):
            assert _enqueue(http, payload)["state"] == "waiting", payload

        pii = _enqueue(http, {"body": "Call 555-867-5309 or mail sarah@acme.io; SSN 123-45-6789, card 4111 1111 1111 1111",
                              "order": "ORD-20240115-88231", "zip": "94105", "version": "v2.3.14", "when": "2024-01-15"})
        assert pii["state"] == "waiting"
        assert pii["payload"]["body"] == ("Call [REDACTED-PHONE] or mail [REDACTED-EMAIL]; SSN [REDACTED-SSN], "
                                          "card [REDACTED-CARD]")
        assert pii["payload"]["order"] == "ORD-20240115-88231" and pii["payload"]["zip"] == "94105"
        stored = http.get(f"/v1/queues/ai-outreach/jobs/{pii['id']}").json()
        assert stored["payload"] == pii["payload"]
        wait_until(lambda: any(r.json() == pii["payload"] for r in receiver.for_path("/ai-outreach")))

        http.patch("/v1/guardrails", json={"piiMode": "block", "piiTypes": ["ssn", "card"]})
        assert _enqueue(http, {"phone": "555-867-5309"})["state"] == "waiting"
        blocked = _enqueue(http, {"card": 4111111111111111})
        assert (blocked["blockedBy"], blocked["blockReason"]) == ("pii", "Payload contains PII: card")
        blocked_ids = [j["id"] for j in http.get("/v1/queues/ai-outreach/jobs", params={"state": "blocked"}).json()["data"]]
        assert len(blocked_ids) == 7
        stats = http.get("/v1/guardrails/stats", params={"days": 7}).json()
        assert stats["byStage"] == {"dnc": 3, "competitor": 3, "pii": 1, "brand_tone": 0} and stats["total"] == 7
        assert len(stats["byDay"]) == 7 and stats["byDay"][-1]["total"] == 7
        counts = http.get("/v1/queues/ai-outreach").json()["counts"]
        assert counts["blocked"] == 7
    delivered_ids = {r.headers["x-rotor-job-id"] for r in receiver.for_path("/ai-outreach")}
    assert not delivered_ids & set(blocked_ids)


@pytest.mark.sqlite_only  # reads the SQLite file and its WAL byte by byte
def test_redacted_pii_never_reaches_the_database(server: ServerProcess) -> None:
    with server.client() as http:
        http.post("/v1/queues", json={"name": "q"})
        http.patch("/v1/guardrails", json={"piiRedactionEnabled": True})
        http.post("/v1/queues/q/jobs", json={"payload": {"ssn": "219-09-9999", "phone": "+14155550123"}})
        http.post("/v1/queues/q/jobs/batch", json={"jobs": [{"payload": {"m": f"reach me at jo{i}@corp.example"}} for i in range(3)]})
    conn = sqlite3.connect(Path(server.data_dir) / "rotor.db")
    conn.execute("PRAGMA wal_checkpoint(FULL)")
    data = (Path(server.data_dir) / "rotor.db").read_bytes() + (Path(server.data_dir) / "rotor.db-wal").read_bytes()
    for secret in (b"219-09-9999", b"+14155550123", b"jo1@corp.example"):
        assert secret not in data


def test_blocked_jobs_are_never_delivered_and_a_retry_screens_again(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    server = make_server(**FAST)
    with server.client() as http:
        hook = http.post("/v1/webhooks", json={"url": receiver.url("/wh"), "eventTypes": ["guardrail.blocked"]})
        assert hook.status_code == 201, hook.text
        _queue(http, receiver)
        http.post("/v1/guardrails/dnc", json={"emails": ["alice@example.com"], "domains": ["bounced.io"]})
        batch = http.post("/v1/queues/ai-outreach/jobs/batch", json={"jobs": [
            {"payload": {"to": "alice@example.com", "subject": "Hi"}}, {"payload": {"to": "ok@fine.com"}},
            {"payload": {"to": "x@sub.bounced.io"}},
        ]}).json()["data"]
        assert [j["state"] for j in batch] == ["guardrail.blocked", "waiting", "guardrail.blocked"]
        event = wait_until(lambda: receiver.for_path("/wh") and receiver.for_path("/wh")[0].json())
        assert event["type"] == "guardrail.blocked"
        assert event["data"] == {"jobId": batch[0]["id"], "queueName": "ai-outreach", "blockedBy": "dnc",
                                 "reason": "Email address matched DNC list", "payload": {"to": "alice@example.com", "subject": "Hi"}}
        wait_until(lambda: receiver.for_path("/ai-outreach"))
        again = http.post(f"/v1/queues/ai-outreach/jobs/{batch[0]['id']}/retry").json()
        assert again["state"] == "guardrail.blocked" and again["blockedBy"] == "dnc"
        assert http.delete("/v1/guardrails/dnc/emails/alice@example.com").status_code == 204
        released = http.post(f"/v1/queues/ai-outreach/jobs/{batch[0]['id']}/retry").json()
        assert released["state"] == "waiting" and released["blockedBy"] is None and released["blockReason"] is None
        wait_until(lambda: len(receiver.for_path("/ai-outreach")) == 2)
        audit = http.get("/v1/audit", params={"event_type": "guardrail.blocked"}).json()["data"]
        assert len(audit) == 3 and audit[0]["actor_id"] == "system"
        assert {(e["metadata"]["blockedBy"], e["metadata"]["reason"]) for e in audit} == {
            ("dnc", "Email address matched DNC list"), ("dnc", "Email domain matched DNC list: bounced.io")}
        assert http.get("/v1/guardrails/stats").json()["byStage"]["dnc"] == 3
    delivered = {r.headers["x-rotor-job-id"] for r in receiver.for_path("/ai-outreach")}
    assert delivered == {batch[0]["id"], batch[1]["id"]}


def test_brand_tone_holds_jobs_off_the_request_path(
    make_server: Callable[..., ServerProcess], receiver: Receiver, llm: FakeLLM
) -> None:
    server = _judged_server(make_server, llm)
    with server.client() as http:
        _queue(http, receiver)
        _queue(http, receiver, "gated", approval_required=True)
        http.patch("/v1/guardrails", json={"brandToneJudgeEnabled": True, "brandToneRubric": RUBRIC, "brandToneThreshold": 0.7})
        llm.hold()
        calm = _enqueue(http, {"body": "Happy to share how teams like yours cut review time."})
        assert calm["state"] == "waiting"
        wait_until(lambda: llm.calls == 1)
        listed = http.get("/v1/queues/ai-outreach/jobs", params={"state": "waiting"}).json()["data"]
        assert [j["id"] for j in listed] == [calm["id"]]
        assert http.get("/v1/queues/ai-outreach").json()["counts"]["waiting"] == 1
        assert receiver.for_path("/ai-outreach") == []  # no delivery before the verdict
        llm.release()
        wait_until(lambda: receiver.for_path("/ai-outreach"))

        pushy = _enqueue(http, {"body": "Act now! Limited time offer."})
        job = wait_until(lambda: (j := http.get(f"/v1/queues/ai-outreach/jobs/{pushy['id']}").json())["state"] != "waiting" and j)
        assert job["state"] == "guardrail.blocked" and job["blockedBy"] == "brand_tone"
        assert job["blockReason"].startswith("Brand tone score 0.15 is below the threshold 0.70")
        gated = _enqueue(http, {"body": "A thoughtful note."}, queue="gated")
        approval = wait_until(lambda: http.get("/v1/approvals", params={"queue": "gated"}).json()["approvals"])
        assert approval[0]["jobId"] == gated["id"]
        assert http.get(f"/v1/queues/gated/jobs/{gated['id']}").json()["state"] == "pending_approval"
        assert http.get("/v1/guardrails/stats").json()["byStage"]["brand_tone"] == 1

        llm.hold()
        held = _enqueue(http, {"body": "Cancelled while the judge thinks."})
        wait_until(lambda: llm.calls == 4)
        assert http.delete(f"/v1/queues/ai-outreach/jobs/{held['id']}").json()["state"] == "cancelled"
        llm.release()
        later = _enqueue(http, {"body": "A calm follow-up."})
        wait_until(lambda: len(receiver.for_path("/ai-outreach")) == 2)
        assert http.get(f"/v1/queues/ai-outreach/jobs/{held['id']}").json()["state"] == "cancelled"
    request = llm.requests[0]
    assert request["path"] == "/v1/messages" and request["headers"]["x-api-key"] == "sk-test"
    assert request["body"]["model"] == "claude-3-5-haiku-latest" and RUBRIC in request["body"]["messages"][0]["content"]
    assert [r.headers["x-rotor-job-id"] for r in receiver.for_path("/ai-outreach")] == [calm["id"], later["id"]]


def test_judge_fails_open_and_the_breaker_stops_calling(
    make_server: Callable[..., ServerProcess], receiver: Receiver, llm: FakeLLM
) -> None:
    server = _judged_server(make_server, llm, ROTOR_GUARDRAILS_BRAND_TONE_BREAKER_FAILURES="2",
                            ROTOR_GUARDRAILS_BRAND_TONE_BREAKER_COOLDOWN="1h", ROTOR_GUARDRAILS_BRAND_TONE_CONCURRENCY="1")
    with server.client() as http:
        _queue(http, receiver)
        http.patch("/v1/guardrails", json={"brandToneJudgeEnabled": True, "brandToneRubric": RUBRIC})
        llm.mode = "error"
        jobs = [_enqueue(http, {"body": f"Act now {i}"}) for i in range(4)]
        wait_until(lambda: len(receiver.for_path("/ai-outreach")) == 4)  # every job went on: failed open
        assert llm.calls == 2  # then the breaker opened
        audit = http.get("/v1/audit", params={"event_type": "guardrail.judge_failed_open"}).json()["data"]
        assert {e["resource_id"] for e in audit} == {j["id"] for j in jobs}
        errors = {e["metadata"]["error"] for e in audit}
        assert any("HTTP 500" in e for e in errors) and any("circuit breaker open" in e for e in errors)


def test_judge_timeout_and_garbage_fail_open_with_openai(
    make_server: Callable[..., ServerProcess], receiver: Receiver, llm: FakeLLM
) -> None:
    server = _judged_server(make_server, llm, ROTOR_GUARDRAILS_BRAND_TONE_PROVIDER="openai",
                            ROTOR_GUARDRAILS_BRAND_TONE_MODEL="gpt-4o-mini",
                            ROTOR_GUARDRAILS_BRAND_TONE_BASE_URL=f"{llm.url}/v1")
    with server.client() as http:
        _queue(http, receiver)
        http.patch("/v1/guardrails", json={"brandToneJudgeEnabled": True, "brandToneRubric": RUBRIC})
        blocked = _enqueue(http, {"body": "Don't miss out, act now"})
        wait_until(lambda: http.get(f"/v1/queues/ai-outreach/jobs/{blocked['id']}").json()["state"] == "guardrail.blocked")
        llm.mode, llm.delay = "slow", 2.0
        slow = _enqueue(http, {"body": "Act now"})
        wait_until(lambda: receiver.for_path("/ai-outreach"), timeout=10)
        llm.mode = "garbage"
        _enqueue(http, {"body": "Act now"})
        wait_until(lambda: len(receiver.for_path("/ai-outreach")) == 2)
        audit = http.get("/v1/audit", params={"event_type": "guardrail.judge_failed_open"}).json()["data"]
        reasons = {e["resource_id"]: e["metadata"]["error"] for e in audit}
        assert "did not answer within" in reasons[slow["id"]]
        assert any("not a verdict" in r for r in reasons.values())
    first = llm.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["headers"]["Authorization"] == "Bearer sk-test"
    assert first["body"]["model"] == "gpt-4o-mini" and first["body"]["messages"][0]["role"] == "system"


def test_held_jobs_survive_a_restart(make_server: Callable[..., ServerProcess], receiver: Receiver, llm: FakeLLM) -> None:
    server = _judged_server(make_server, llm)
    with server.client() as http:
        _queue(http, receiver)
        http.patch("/v1/guardrails", json={"brandToneJudgeEnabled": True, "brandToneRubric": RUBRIC})
        llm.hold()
        job = _enqueue(http, {"body": "hello"})
        wait_until(lambda: llm.calls == 1)
    server.kill()
    llm.release()
    again = _judged_server(make_server, llm, data_dir=server.data_dir)
    wait_until(lambda: receiver.for_path("/ai-outreach"))
    assert receiver.for_path("/ai-outreach")[0].headers["x-rotor-job-id"] == job["id"]
    again.kill()


def test_sdk_and_cli(server: ServerProcess, tmp_path: Path) -> None:
    with Rotor(api_key=server.api_key, base_url=server.url) as rotor:
        rotor.guardrails.update({"dncEmails": ["alice@example.com"]}, competitor_domains=["rivalcrm.com"])
        rotor.guardrails.append_dnc(emails=["newunsub@example.com"])
        rotor.guardrails.append_dnc(domains=["competitor-customer.io"])
        config = rotor.guardrails.get()
        assert config["dncEmails"] == ["alice@example.com", "newunsub@example.com"]
        assert config["dncDomains"] == ["competitor-customer.io"] and config["competitorDomains"] == ["rivalcrm.com"]
        rotor.guardrails.remove_dnc_email("alice@example.com")
        rotor.guardrails.remove_dnc_domain("competitor-customer.io")
        assert rotor.guardrails.get()["dncEmails"] == ["newunsub@example.com"]
        with pytest.raises(RotorValidationError):
            rotor.guardrails.update(pii_mode="loud")
        assert rotor.guardrails.stats(days=3)["from"]

    lines = tmp_path / "unsubscribes.txt"
    lines.write_text("# export\nOne@Example.com\nnot an address\n\nbounced.io\n" + "".join(f"u{i}@bulk.example\n" for i in range(2500)))
    table = tmp_path / "crm.csv"
    table.write_text("name,email,domain\nAnn,ann@csv.example,annco.com\nBo,,boco.io\nCy,bad@,\n")
    runner = CliRunner()
    base = ["--api-url", server.url, "--api-key", server.api_key]
    imported = runner.invoke(main, ["guardrails", "dnc", "import", str(lines), "--chunk-size", "1000", *base])
    assert imported.exit_code == 0, imported.output
    assert "added 2,501 email(s) and 1 domain(s); 1 invalid line(s) skipped" in imported.output
    from_csv = runner.invoke(main, ["guardrails", "dnc", "import", str(table), "--json", *base])
    assert from_csv.exit_code == 0, from_csv.output
    assert '"emails": 1' in from_csv.output and '"domains": 2' in from_csv.output and '"skipped": 1' in from_csv.output
    assert runner.invoke(main, ["guardrails", "dnc", "add", "z@z.io", "--domain", "zz.io", *base]).exit_code == 0
    assert runner.invoke(main, ["guardrails", "dnc", "remove", "z@z.io", *base]).exit_code == 0
    updated = runner.invoke(main, ["guardrails", "update", "--pii", "--pii-mode", "block", "--pii-types", "ssn,card", *base])
    assert updated.exit_code == 0 and "block (ssn, card)" in updated.output
    shown = runner.invoke(main, ["guardrails", "get", *base])
    assert "DNC emails:          2,503" in shown.output  # newunsub, one@, 2,500 bulk, ann@
    assert "DNC domains:         4" in shown.output  # bounced.io, annco.com, boco.io, zz.io
    assert runner.invoke(main, ["guardrails", "stats", *base]).exit_code == 0
    with Rotor(api_key=server.api_key, base_url=server.url) as rotor:
        config = rotor.guardrails.get()
        assert config["dncEmailsCount"] == 2503 and config["dncDomainsCount"] == 4
        page = rotor.guardrails.list_dnc("emails", limit=2)
        assert page["data"] == ["ann@csv.example", "newunsub@example.com"] and page["nextCursor"]


def test_judge_key_from_the_secrets_vault(make_server: Callable[..., ServerProcess], receiver: Receiver, llm: FakeLLM) -> None:
    server = _judged_server(make_server, llm, ROTOR_GUARDRAILS_BRAND_TONE_API_KEY="", ANTHROPIC_API_KEY="",
                            ROTOR_GUARDRAILS_BRAND_TONE_API_KEY_SECRET="JUDGE_KEY")
    with server.client() as http:
        assert http.post("/v1/secrets", json={"name": "JUDGE_KEY", "value": "sk-from-vault"}).status_code == 201
        _queue(http, receiver)
        http.patch("/v1/guardrails", json={"brandToneJudgeEnabled": True, "brandToneRubric": RUBRIC})
        blocked = _enqueue(http, {"body": "Limited time: act now"})
        wait_until(lambda: http.get(f"/v1/queues/ai-outreach/jobs/{blocked['id']}").json()["state"] == "guardrail.blocked")
    assert llm.requests[0]["headers"]["x-api-key"] == "sk-from-vault"
