"""The secrets vault end to end: CRUD, `${{ secrets.NAME }}` at dispatch, and the plaintext staying out of everything."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from rotor_lite.cli import main
from tests.helpers import Receiver, Reply, ServerProcess, wait_until

pytestmark = pytest.mark.both_delivery_paths  # every test: in-process, and through two delivery helpers

VALUE = "sk_live_Zq8Xv1Tn4Rm7Wc2Ya9Kb"
ROTATED = "sk_live_Hf3Jd6Lp0Qs5Ue8Ix1Vo"


def test_crud_names_hints_and_conflicts(server: ServerProcess) -> None:
    with server.client() as http:
        created = http.post("/v1/secrets", json={"name": "STRIPE_KEY", "value": VALUE})
        assert created.status_code == 201, created.text
        assert created.json()["name"] == "STRIPE_KEY" and created.json()["value_hint"] == "sk_li…"
        assert http.post("/v1/secrets", json={"name": "STRIPE_KEY", "value": "x"}).status_code == 409
        assert http.post("/v1/secrets", json={"name": "SHORT", "value": "abc"}).json()["value_hint"] == "a…"
        for bad in ({"name": "lower", "value": "v"}, {"name": "1ABC", "value": "v"}, {"name": "OK", "value": ""},
                    {"name": "OK"}, {"name": "OK", "value": "v", "extra": 1}):
            assert http.post("/v1/secrets", json=bad).status_code == 422, bad
        listed = http.get("/v1/secrets").json()["data"]
        assert [s["name"] for s in listed] == ["SHORT", "STRIPE_KEY"]
        assert set(listed[0]) == {"name", "value_hint", "created_at", "updated_at"}
        rotated = http.patch("/v1/secrets/STRIPE_KEY", json={"value": ROTATED})
        assert rotated.status_code == 200 and rotated.json()["value_hint"] == "sk_li…"
        assert http.patch("/v1/secrets/NOPE", json={"value": "v"}).status_code == 404
        assert http.delete("/v1/secrets/SHORT").status_code == 204
        assert http.delete("/v1/secrets/SHORT").status_code == 404
        types = [e["event_type"] for e in http.get("/v1/audit?resource_type=secret").json()["data"]]
        assert types == ["secret.deleted", "secret.rotated", "secret.created", "secret.created"]


def test_templates_resolve_at_dispatch_and_the_plaintext_stays_out(server: ServerProcess, receiver: Receiver) -> None:
    with server.client() as http:
        http.post("/v1/secrets", json={"name": "NOTIFY_TOKEN", "value": VALUE})
        queue = http.post("/v1/queues", json={
            "name": "notify", "callback_url": receiver.url("/notify") + "?token=${{ secrets.NOTIFY_TOKEN }}",
            "callback_headers": {"X-API-Key": "${{secrets.NOTIFY_TOKEN}}"},
        })
        assert queue.status_code == 201, queue.text
        payload = {"auth": "Bearer ${{ secrets.NOTIFY_TOKEN }}", "nested": [{"k": "${{ secrets.NOTIFY_TOKEN }}"}], "n": 1}
        job = http.post("/v1/queues/notify/jobs", json={"payload": payload}).json()["id"]
        wait_until(lambda: http.get(f"/v1/queues/notify/jobs/{job}").json()["state"] == "completed")
        http.patch("/v1/secrets/NOTIFY_TOKEN", json={"value": ROTATED})
        second = http.post("/v1/queues/notify/jobs", json={"payload": {"t": "${{ secrets.NOTIFY_TOKEN }}"}}).json()["id"]
        wait_until(lambda: http.get(f"/v1/queues/notify/jobs/{second}").json()["state"] == "completed")
        stored = http.get(f"/v1/queues/notify/jobs/{job}").json()
        responses = [http.get(p).text for p in ("/v1/queues/notify", f"/v1/queues/notify/jobs/{job}", "/v1/secrets",
                                                "/v1/queues/notify/jobs", "/v1/audit", "/v1/audit?format=csv")]
        accessed = http.get("/v1/audit?event_type=secret.accessed").json()["data"]
    first, last = receiver.for_path("/notify")
    assert first.json() == {"auth": f"Bearer {VALUE}", "nested": [{"k": VALUE}], "n": 1}
    assert first.headers["x-api-key"] == VALUE and last.json() == {"t": ROTATED}
    assert stored["payload"] == payload
    assert accessed and accessed[0]["resource_id"] == "NOTIFY_TOKEN"
    server.terminate()
    for text in responses + [server.log()]:
        assert VALUE not in text and ROTATED not in text
    for path in Path(server.data_dir).rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert VALUE.encode() not in content and ROTATED.encode() not in content, path


def test_a_secret_deleted_after_enqueue_fails_the_attempt(server: ServerProcess, receiver: Receiver) -> None:
    with server.client() as http:
        http.post("/v1/secrets", json={"name": "MISSING", "value": VALUE})
        http.post("/v1/queues", json={"name": "q", "callback_url": receiver.url("/cb"), "retry_attempts": 2,
                                      "defaultJobOptions": {"backoff": {"type": "fixed", "delay": 10}}})
        http.post("/v1/queues/q/pause")
        job = http.post("/v1/queues/q/jobs", json={"payload": {"k": "${{ secrets.MISSING }}"}}).json()["id"]
        assert http.delete("/v1/secrets/MISSING").status_code == 204
        http.post("/v1/queues/q/resume")
        done = wait_until(lambda: (j := http.get(f"/v1/queues/q/jobs/{job}").json())["state"] == "failed" and j)
    assert done["failReason"] == "unknown secret MISSING" and done["attempts"] == 2
    assert [a["outcome"] for a in done["attemptLog"]] == ["error", "error"]
    assert receiver.for_path("/cb") == []


def test_an_unknown_secret_is_refused_where_it_is_written(server: ServerProcess) -> None:
    with server.client() as http:
        http.post("/v1/secrets", json={"name": "KNOWN", "value": VALUE})
        known = "${{ secrets.KNOWN }}"

        def refused(response: httpx.Response, name: str) -> bool:
            error = response.json().get("error", {})
            return response.status_code == 422 and error["code"] == "VALIDATION_ERROR" and error["details"]["secret"] == name

        url = "http://127.0.0.1:9/cb?token="
        assert refused(http.post("/v1/queues", json={"name": "u", "callback_url": url + "${{ secrets.NO_URL }}"}), "NO_URL")
        assert refused(http.post("/v1/queues", json={"name": "h", "callback_headers": {"X-K": "${{secrets.NO_HDR}}"}}), "NO_HDR")
        assert http.get("/v1/queues").json()["data"] == []
        created = http.post("/v1/queues", json={"name": "q", "callback_url": url + known, "callback_headers": {"X-K": known}})
        assert created.status_code == 201, created.text
        http.post("/v1/queues/q/pause")
        assert refused(http.patch("/v1/queues/q", json={"callback_url": url + "${{ secrets.NO_URL }}"}), "NO_URL")
        assert refused(http.patch("/v1/queues/q", json={"callbackHeaders": {"X-K": "${{ secrets.NO_HDR }}"}}), "NO_HDR")
        assert http.get("/v1/queues/q").json()["callback_url"] == url + known

        deep = {"a": [{"b": ["fine", "Bearer ${{ secrets.NO_PAYLOAD }}"]}], "k": known}
        assert refused(http.post("/v1/queues/q/jobs", json={"payload": deep}), "NO_PAYLOAD")
        batch = {"jobs": [{"payload": {"k": known}}, {"payload": {"k": "${{ secrets.NO_BATCH }}"}}]}
        assert refused(http.post("/v1/queues/q/jobs/batch", json=batch), "NO_BATCH")
        schedule = {"queue": "q", "cron": "0 0 1 1 *", "timezone": "UTC", "payload": {"k": "${{ secrets.NO_CRON }}"}}
        assert refused(http.post("/v1/schedules", json=schedule), "NO_CRON")
        assert http.get("/v1/queues/q/jobs").json()["data"] == [] and http.get("/v1/schedules").json()["data"] == []

        assert http.post("/v1/queues/q/jobs", json={"payload": {"k": known, "note": "${{ not a template"}}).status_code == 201
        assert http.post("/v1/queues/q/jobs/batch", json={"jobs": [{"payload": {"k": known}}] * 2}).status_code == 201
        assert http.post("/v1/schedules", json={**schedule, "payload": {"k": known}}).status_code == 201


def test_a_secret_echoed_in_an_answer_never_lands_in_part(server: ServerProcess, receiver: Receiver) -> None:
    """The endpoint echoes the token so that each cut (the 200-byte error snippet, the 64 KiB result) falls inside it."""
    fragments = {VALUE[i : i + 4] for i in range(len(VALUE) - 3)}
    echoes = [b"e" * (200 - kept) + VALUE.encode() + b" was refused" for kept in (len(VALUE) - 1, 10, 4)]
    receiver.script("/echo", *(Reply(500, body) for body in [*echoes, b"{\"token\": \"" + VALUE.encode() + b"\"}"]))
    receiver.script("/echo", Reply(200, b"r" * (64 * 1024 - 25) + VALUE.encode() * 2))
    with server.client() as http:
        http.post("/v1/secrets", json={"name": "ECHOED", "value": VALUE})
        http.post("/v1/queues", json={"name": "echo", "callback_url": receiver.url("/echo"), "retry_attempts": 4,
                                      "defaultJobOptions": {"backoff": {"type": "fixed", "delay": 10}}})
        job = http.post("/v1/queues/echo/jobs", json={"payload": {"token": "${{ secrets.ECHOED }}"}}).json()["id"]
        failed = wait_until(lambda: (j := http.get(f"/v1/queues/echo/jobs/{job}").json())["state"] == "failed" and j)
        assert http.post(f"/v1/queues/echo/jobs/{job}/retry").status_code == 200
        done = wait_until(lambda: (j := http.get(f"/v1/queues/echo/jobs/{job}").json())["state"] == "completed" and j)
    errors = [a["error"] for a in failed["attemptLog"]]
    assert errors[0] == "HTTP 500: " + "e" * (200 - len(VALUE) + 1) + "[secret] was refused", errors  # scrubbed, then cut
    assert errors[3] == 'HTTP 500: {"token": "[secret]"}'
    for text in [failed["failReason"], *errors, done["result"]]:
        assert not [f for f in fragments if f in text], text
    assert done["result"].endswith("[secret]…[truncated]")


def test_cli_create_from_stdin_list_rotate_delete(server: ServerProcess) -> None:
    runner = CliRunner()
    base = ["--api-key", server.api_key, "--api-url", server.url]
    created = runner.invoke(main, ["secrets", "create", "RESEND_KEY", "--stdin", *base], input="re_abcdefgh\n")
    assert created.exit_code == 0, created.output
    listed = runner.invoke(main, ["secrets", "list", *base])
    assert "RESEND_KEY" in listed.output and "re_…" in listed.output and "re_abcdefgh" not in listed.output
    assert runner.invoke(main, ["secrets", "rotate", "RESEND_KEY", "--value", "re_zzzzzzzz", *base]).exit_code == 0
    as_json = json.loads(runner.invoke(main, ["secrets", "list", "--json", *base]).output)
    assert as_json["data"][0]["value_hint"] == "re_…"
    assert runner.invoke(main, ["secrets", "delete", "RESEND_KEY", "--force", *base]).exit_code == 0
    missing = runner.invoke(main, ["secrets", "delete", "RESEND_KEY", "--force", *base])
    assert missing.exit_code == 1 and "NOT_FOUND" in missing.output
