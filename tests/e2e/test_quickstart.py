"""The Quickstart path: a queue with a callback URL, a job, a signed delivery, completion."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from tests.helpers import Receiver, ServerProcess, wait_until


def reference_verify(headers: dict[str, str], body: str, secret: str) -> bool:
    """The verification function of API.md, verbatim in behaviour."""
    jid = headers.get("x-rotor-job-id", ""); ts = headers.get("x-rotor-timestamp", ""); sig = headers.get("x-rotor-signature", "")  # noqa: E702
    if not (jid and ts and sig):
        return False
    if abs(time.time() - int(ts)) > 300:
        return False
    digest = hmac.new(secret.encode(), f"{jid}.{ts}.{body}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(f"v1,{base64.b64encode(digest).decode()}", sig)


def test_job_is_delivered_signed_and_completes(server: ServerProcess, receiver: Receiver) -> None:
    with server.client() as http:
        created = http.post("/v1/queues", json={"name": "welcome-emails", "concurrency": 5, "retry_attempts": 3,
                                                "callback_url": receiver.url("/cb")})
        assert created.status_code == 201, created.text
        secret = created.json()["callback_secret"]
        job = http.post("/v1/queues/welcome-emails/jobs", json={"payload": {"contactId": "c1"}, "tags": ["a", "b"]})
        assert job.status_code == 201, job.text
        job_id = job.json()["id"]

        wait_until(lambda: http.get(f"/v1/queues/welcome-emails/jobs/{job_id}").json()["state"] == "completed")
        done = http.get(f"/v1/queues/welcome-emails/jobs/{job_id}").json()

    [got] = receiver.for_path("/cb")
    assert reference_verify(got.headers, got.body.decode(), secret)
    assert got.headers["x-rotor-job-id"] == job_id
    assert got.headers["x-rotor-queue"] == "welcome-emails"
    assert got.headers["x-rotor-attempt"] == "1"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"].startswith("rotor-lite/")
    assert got.json() == {"contactId": "c1"}
    assert done["attempts"] == 1 and done["result"] == {"ok": True} and done["tags"] == ["a", "b"]
    assert [a["outcome"] for a in done["attemptLog"]] == ["2xx"]
    assert "callback_secret" not in server.client().get("/v1/queues/welcome-emails").json()
