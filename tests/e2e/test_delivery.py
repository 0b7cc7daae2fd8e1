"""Callback delivery: retries and backoff, the DLQ, timeouts, redirects, results, headers, the SSRF guard."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import ConnectionCounter, Receiver, Reply, ServerProcess, wait_until

pytestmark = pytest.mark.both_delivery_paths  # every test: in-process, and through two delivery helpers

QueueMaker = Callable[..., dict[str, Any]]


@pytest.fixture
def make_queue(http: httpx.Client) -> QueueMaker:
    """Create a uniquely named queue; returns the create response (with `callback_secret`)."""

    def make(callback_url: str, **fields: Any) -> dict[str, Any]:
        created = http.post("/v1/queues", json={"name": f"dq-{uuid.uuid4().hex[:10]}", "callback_url": callback_url, **fields})
        assert created.status_code == 201, created.text
        return dict(created.json())

    return make


def enqueue(http: httpx.Client, queue: str, payload: Any = None, **fields: Any) -> str:
    created = http.post(f"/v1/queues/{queue}/jobs", json={"payload": payload or {}, **fields})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def wait_for_state(http: httpx.Client, queue: str, job_id: str, state: str, timeout: float = 10.0) -> dict[str, Any]:
    """Poll the job until it is in `state`; on timeout the failure shows the job as last seen."""
    last: dict[str, Any] = {}

    def reached() -> bool:
        last.update(http.get(f"/v1/queues/{queue}/jobs/{job_id}").json())
        return bool(last["state"] == state)

    try:
        wait_until(reached, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"job {job_id} never reached {state!r}; last seen: {last}") from exc
    return last


def gaps(requests: list[Any]) -> list[float]:
    return [later.at - earlier.at for earlier, later in pairwise(requests)]


def signature_ok(headers: dict[str, str], body: bytes, secret: str) -> bool:
    message = f"{headers['x-rotor-job-id']}.{headers['x-rotor-timestamp']}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return hmac.compare_digest(f"v1,{base64.b64encode(digest).decode()}", headers["x-rotor-signature"])


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code and isinstance(body["error"]["details"], dict)
    return dict(body["error"])


# Retries, backoff and the dead-letter queue ---------------------------------------------------


def test_fixed_backoff_then_failed_in_dlq_and_replay_twice_is_harmless(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker
) -> None:
    receiver.script("/fixed", Reply(500, b'{"error":"boom"}'), Reply(500, b'{"error":"boom"}'), Reply(500, b'{"error":"boom"}'))
    queue = make_queue(receiver.url("/fixed"), defaultJobOptions={"attempts": 3, "backoff": {"type": "fixed", "delay": 100}})
    name = queue["name"]
    job_id = enqueue(http, name, {"n": 1})

    failed = wait_for_state(http, name, job_id, "failed")
    got = receiver.for_path("/fixed")
    assert [r.headers["x-rotor-attempt"] for r in got] == ["1", "2", "3"]
    assert {r.headers["x-rotor-job-id"] for r in got} == {job_id}
    assert all(0.099 <= gap < 1.5 for gap in gaps(got)), gaps(got)  # jitter adds at most 10 %, never subtracts
    assert failed["attempts"] == 3 and failed["maxAttempts"] == 3 and failed["finishedAt"]
    assert failed["failReason"] and "500" in failed["failReason"]
    assert [(a["attempt"], a["status"], a["outcome"]) for a in failed["attemptLog"]] == [(1, 500, "5xx"), (2, 500, "5xx"), (3, 500, "5xx")]
    assert [j["id"] for j in http.get("/v1/dlq", params={"queue": name}).json()["data"]] == [job_id]
    assert job_id in [j["id"] for j in http.get("/v1/dlq", params={"limit": 500}).json()["data"]]

    first = http.post("/v1/dlq/replay", json={"queue": name, "jobIds": [job_id]})
    second = http.post("/v1/dlq/replay", json={"queue": name, "jobIds": [job_id]})
    assert (first.status_code, first.json()) == (200, {"replayed": 1})
    assert (second.status_code, second.json()) == (200, {"replayed": 0})

    done = wait_for_state(http, name, job_id, "completed")
    assert done["attempts"] == 1 and done["failReason"] is None
    assert len(receiver.for_path("/fixed")) == 4 and receiver.for_path("/fixed")[-1].headers["x-rotor-attempt"] == "1"
    assert http.get("/v1/dlq", params={"queue": name}).json() == {"data": [], "nextCursor": None}
    assert http.post("/v1/dlq/replay", json={"queue": name}).json() == {"replayed": 0}


def test_exponential_backoff_doubles_then_retry_all_brings_failed_jobs_back(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker
) -> None:
    receiver.script("/exp", *[Reply(500) for _ in range(3)])
    queue = make_queue(receiver.url("/exp"), defaultJobOptions={"attempts": 3, "backoff": {"type": "exponential", "delay": 100}})
    name = queue["name"]
    assert queue["defaultJobOptions"] == {"attempts": 3, "backoff": {"type": "exponential", "delay": 100}}
    assert queue["retry_attempts"] == 3
    job_id = enqueue(http, name)

    failed = wait_for_state(http, name, job_id, "failed")
    first_gap, second_gap = gaps(receiver.for_path("/exp"))
    assert 0.099 <= first_gap < 1.5, first_gap    # 100 ms × 2^0
    assert 0.199 <= second_gap < 1.6, second_gap  # 100 ms × 2^1
    assert [a["outcome"] for a in failed["attemptLog"]] == ["5xx"] * 3

    retried = http.post(f"/v1/queues/{name}/retry-all")
    assert (retried.status_code, retried.json()) == (200, {"retried": 1})
    done = wait_for_state(http, name, job_id, "completed")
    assert done["attempts"] == 1
    assert receiver.for_path("/exp")[-1].headers["x-rotor-attempt"] == "1"
    assert http.post(f"/v1/queues/{name}/retry-all").json() == {"retried": 0}


def test_manual_retry_resets_attempts_and_redelivers_as_attempt_one(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker
) -> None:
    receiver.script("/once", Reply(500), Reply(500))
    name = make_queue(receiver.url("/once"), retry_attempts=2, defaultJobOptions={"backoff": {"type": "fixed", "delay": 10}})["name"]
    job_id = enqueue(http, name, {"x": 1})
    assert wait_for_state(http, name, job_id, "failed")["attempts"] == 2

    retried = http.post(f"/v1/queues/{name}/jobs/{job_id}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["state"] == "waiting" and retried.json()["attempts"] == 0
    assert retried.json()["failReason"] is None and retried.json()["id"] == job_id

    done = wait_for_state(http, name, job_id, "completed")
    assert done["attempts"] == 1
    assert [r.headers["x-rotor-attempt"] for r in receiver.for_path("/once")] == ["1", "2", "1"]
    assert_error(http.post(f"/v1/queues/{name}/jobs/{job_id}/retry"), 409, "CONFLICT")  # completed is not retryable
    assert_error(http.post(f"/v1/queues/{name}/jobs/job_{'0' * 32}/retry"), 404, "NOT_FOUND")


def test_redelivery_keeps_job_id_and_body_and_counts_attempts(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker
) -> None:
    receiver.script("/flaky", Reply(500), Reply(503))
    queue = make_queue(receiver.url("/flaky"), retry_attempts=3, defaultJobOptions={"backoff": {"type": "fixed", "delay": 10}})
    job_id = enqueue(http, queue["name"], {"contact": "c-1", "n": [1, 2, 3]})

    done = wait_for_state(http, queue["name"], job_id, "completed")
    got = receiver.for_path("/flaky")
    assert [r.headers["x-rotor-attempt"] for r in got] == ["1", "2", "3"]
    assert {r.headers["x-rotor-job-id"] for r in got} == {job_id}
    assert {r.body for r in got} == {b'{"contact":"c-1","n":[1,2,3]}'}
    assert all(signature_ok(r.headers, r.body, queue["callback_secret"]) for r in got)
    assert done["attempts"] == 3
    assert [(a["status"], a["outcome"]) for a in done["attemptLog"]] == [(500, "5xx"), (503, "5xx"), (200, "2xx")]


@pytest.mark.parametrize(("status", "outcome"), [(429, "4xx"), (503, "5xx")])
def test_retry_after_on_429_and_503_is_honoured_over_the_backoff(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker, status: int, outcome: str
) -> None:
    path = f"/busy-{status}"
    receiver.script(path, Reply(status, b'{"error":"slow down"}', headers={"Retry-After": "1"}))
    name = make_queue(receiver.url(path), defaultJobOptions={"attempts": 2, "backoff": {"type": "fixed", "delay": 10}})["name"]
    job_id = enqueue(http, name)

    done = wait_for_state(http, name, job_id, "completed")
    [gap] = gaps(receiver.for_path(path))
    assert 0.99 <= gap < 5, gap  # the 1 s asked for, not the 10 ms backoff
    assert [(a["status"], a["outcome"]) for a in done["attemptLog"]] == [(status, outcome), (200, "2xx")]


def test_a_callback_slower_than_timeout_seconds_is_a_timeout(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker
) -> None:
    receiver.script("/slow", Reply(delay=3.0))
    queue = make_queue(receiver.url("/slow"), timeout_seconds=1, retry_attempts=1)
    assert queue["timeout_seconds"] == 1
    job_id = enqueue(http, queue["name"])

    failed = wait_for_state(http, queue["name"], job_id, "failed")
    [attempt] = failed["attemptLog"]
    assert attempt["outcome"] == "timeout" and attempt["status"] is None and attempt["error"]
    assert 900 <= attempt["durationMs"] < 2900, attempt
    assert failed["failReason"]


def stalled_total(server: ServerProcess, scrape_token: str) -> float:
    scraped = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {scrape_token}"}).text
    [value] = [line.split()[-1] for line in scraped.splitlines() if line.startswith("rotor_jobs_stalled_total")]
    return float(value)


def test_a_delivery_that_raises_is_a_failed_attempt_never_a_stalled_job(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    """A secret holding a line break, put in a header, makes the HTTP client raise outside its network errors."""
    server = make_server(ROTOR_METRICS_TOKEN="scrape-token-for-the-test")
    with server.client() as http:
        assert http.post("/v1/secrets", json={"name": "PEM_LINE", "value": "-----BEGIN KEY-----\r\nMIIB"}).status_code == 201
        queue = {"callback_url": receiver.url("/raises"), "callback_headers": {"X-Key": "${{ secrets.PEM_LINE }}"},
                 "timeout_seconds": 1, "defaultJobOptions": {"backoff": {"type": "fixed", "delay": 10}}}
        assert http.post("/v1/queues", json={"name": "raises", "retry_attempts": 2, **queue}).status_code == 201
        assert http.post("/v1/queues", json={"name": "waits", "retry_attempts": 2, **queue,
                                             "defaultJobOptions": {"backoff": {"type": "fixed", "delay": 600_000}}}).status_code == 201
        job_id = enqueue(http, "raises")
        waiting_id = enqueue(http, "waits")

        failed = wait_for_state(http, "raises", job_id, "failed")
        assert failed["attempts"] == 2 and [a["outcome"] for a in failed["attemptLog"]] == ["error", "error"]
        assert failed["failReason"].startswith("internal error: ValueError: "), failed["failReason"]
        assert len(failed["failReason"]) <= 300 and "MIIB" not in json.dumps(failed)
        assert [job["id"] for job in http.get("/v1/dlq", params={"queue": "raises"}).json()["data"]] == [job_id]
        assert http.post(f"/v1/queues/raises/jobs/{job_id}/retry").status_code == 200

        delayed = wait_for_state(http, "waits", waiting_id, "delayed")  # between its attempts, not stuck in active
        assert delayed["attempts"] == 1
        cancelled = http.delete(f"/v1/queues/waits/jobs/{waiting_id}")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        wait_for_state(http, "raises", job_id, "failed")
        assert stalled_total(server, "scrape-token-for-the-test") == 0
    assert receiver.for_path("/raises") == []
    log = server.log()
    assert log.count(f"{job_id}' raised internal error: ValueError") == 4, log  # once per attempt: 2, 2 after the retry
    assert len(log.splitlines()) < 200 and "MIIB" not in log


def test_a_redirect_is_not_followed(http: httpx.Client, receiver: Receiver, make_queue: QueueMaker) -> None:
    receiver.script("/moved", Reply(302, b"", headers={"Location": receiver.url("/target")}))
    name = make_queue(receiver.url("/moved"), retry_attempts=1)["name"]
    job_id = enqueue(http, name)

    failed = wait_for_state(http, name, job_id, "failed")
    [attempt] = failed["attemptLog"]
    assert (attempt["status"], attempt["outcome"]) == (302, "error")  # neither a 2xx nor a 4xx/5xx answer
    assert failed["failReason"].startswith("HTTP 302")
    assert receiver.for_path("/target") == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"sent": true, "ids": [1, 2]}', {"sent": True, "ids": [1, 2]}),
        (b"[1, 2, 3]", [1, 2, 3]),
        (b"accepted, thanks", "accepted, thanks"),
    ],
    ids=["json-object", "json-array", "text"],
)
def test_result_keeps_json_as_json_and_text_as_a_string(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker, body: bytes, expected: Any
) -> None:
    receiver.script("/result", Reply(200, body))
    name = make_queue(receiver.url("/result"))["name"]
    job_id = enqueue(http, name)

    assert wait_for_state(http, name, job_id, "completed")["result"] == expected


TRUNCATED = "…[truncated]"  # how a result cut at 64 KiB (or at the timeout) ends


def test_a_result_beyond_64_kib_is_cut_to_64_kib(http: httpx.Client, receiver: Receiver, make_queue: QueueMaker) -> None:
    receiver.script("/big", Reply(200, b"x" * (100 * 1024)))
    name = make_queue(receiver.url("/big"))["name"]
    job_id = enqueue(http, name)

    result = wait_for_state(http, name, job_id, "completed")["result"]
    assert result == "x" * (64 * 1024 - len(TRUNCATED.encode())) + TRUNCATED


def test_a_json_result_that_arrives_in_chunks_is_kept_whole(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker
) -> None:
    answer = {"rows": [{"id": n, "name": f"contact {n}", "ok": n % 3 == 0} for n in range(800)]}
    body = json.dumps(answer).encode()
    assert 30_000 < len(body) < 64 * 1024
    receiver.script("/chunks", Reply(200, body, chunk=4096, chunk_delay=0.02))
    name = make_queue(receiver.url("/chunks"))["name"]

    assert wait_for_state(http, name, enqueue(http, name), "completed")["result"] == answer


def test_an_endless_result_completes_the_job_with_64_kib_marked_truncated(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker
) -> None:
    receiver.script("/endless", Reply(200, b"y" * 4096, chunk=4096, endless=True))
    name = make_queue(receiver.url("/endless"), timeout_seconds=60)["name"]
    started = time.monotonic()

    job = wait_for_state(http, name, enqueue(http, name), "completed", timeout=20)
    assert time.monotonic() - started < 20  # long before the queue's 60 s timeout
    assert job["result"] == "y" * (64 * 1024 - len(TRUNCATED.encode())) + TRUNCATED


def test_a_2xx_body_still_arriving_at_the_timeout_completes_with_what_arrived(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker
) -> None:
    receiver.script("/trickle", Reply(200, b"z" * 10, chunk=10, chunk_delay=0.1, endless=True))
    name = make_queue(receiver.url("/trickle"), timeout_seconds=1)["name"]

    job = wait_for_state(http, name, enqueue(http, name), "completed")
    result = job["result"]
    assert result.endswith(TRUNCATED) and 10 <= len(result) - len(TRUNCATED) < 64 * 1024, result
    assert set(result.removesuffix(TRUNCATED)) == {"z"} and job["attempts"] == 1


def test_callback_headers_are_sent_with_every_delivery(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker
) -> None:
    headers = {"X-Tenant": "acme", "Authorization": "Bearer downstream-token"}
    queue = make_queue(receiver.url("/hdr"), callback_headers=headers)
    assert queue["callback_headers"] == headers
    job_id = enqueue(http, queue["name"], {"a": 1})

    wait_for_state(http, queue["name"], job_id, "completed")
    [got] = receiver.for_path("/hdr")
    assert got.headers["x-tenant"] == "acme" and got.headers["authorization"] == "Bearer downstream-token"
    assert got.headers["x-rotor-job-id"] == job_id and got.headers["x-rotor-queue"] == queue["name"]
    assert signature_ok(got.headers, got.body, queue["callback_secret"])


@pytest.mark.parametrize(
    "name",
    ["Host", "Content-Length", "transfer-encoding", "Connection", "Keep-Alive", "Proxy-Authorization", "TE",
     "Trailer", "Upgrade", "Expect", "Content-Type", "Content-Encoding", "x-rotor-signature", "X-Rotor-Job-Id",
     "x-rotor-anything"],
)
def test_callback_headers_may_not_set_framing_hop_by_hop_or_rotor_headers(http: httpx.Client, name: str) -> None:
    # Such a header gave the handler an empty body (Content-Length: 0) or a forged x-rotor-signature.
    queue = f"dq-{uuid.uuid4().hex[:10]}"
    response = http.post("/v1/queues", json={"name": queue, "callback_url": "http://127.0.0.1:9/cb",
                                             "callback_headers": {"X-Tenant": "acme", name: "0"}})
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"] == {"field": "callback_headers", "header": name}
    assert_error(http.get(f"/v1/queues/{queue}"), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "headers",
    [{"X-A": "a\r\nX-Injected: 1"}, {"X-A": "a\nb"}, {"X-A": "a\x00b"}, {"X-A\r\nX-B": "a"}, {"X-A\n": "a"},
     {"X-\x00": "a"}],
    ids=["crlf-value", "lf-value", "nul-value", "crlf-name", "lf-ending-name", "nul-name"],
)
def test_callback_headers_with_control_characters_are_refused(http: httpx.Client, headers: dict[str, str]) -> None:
    queue = f"dq-{uuid.uuid4().hex[:10]}"
    response = http.post("/v1/queues", json={"name": queue, "callback_url": "http://127.0.0.1:9/cb",
                                             "callback_headers": headers})
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert error["details"] == {"field": "callback_headers", "header": next(iter(headers))}


def test_a_queue_update_with_a_refused_header_changes_nothing(http: httpx.Client, make_queue: QueueMaker) -> None:
    queue = make_queue("http://127.0.0.1:9/cb", concurrency=2, callback_headers={"X-Tenant": "acme"})
    before = http.get(f"/v1/queues/{queue['name']}").json()
    update = {"concurrency": 7, "callback_url": "http://127.0.0.1:9/other", "callback_headers": {"Host": "evil.example"}}
    error = assert_error(http.patch(f"/v1/queues/{queue['name']}", json=update), 422, "VALIDATION_ERROR")
    assert error["details"] == {"field": "callback_headers", "header": "Host"}
    assert http.get(f"/v1/queues/{queue['name']}").json() == before


def test_cookies_a_callback_sets_are_never_sent_back(
    http: httpx.Client, receiver: Receiver, make_queue: QueueMaker
) -> None:
    # One HTTP session serves every workspace's callbacks: a cookie kept from one endpoint's
    # answer would follow later deliveries to that host, whoever's queue they come from.
    # By name: aiohttp's default jar ignores cookies of hosts given as IP addresses.
    url = receiver.url("/cookie").replace("127.0.0.1", "localhost")
    receiver.script("/cookie", Reply(200, headers={"Set-Cookie": "session=tenant-a-secret; Path=/"}))
    first = make_queue(url)["name"]
    wait_for_state(http, first, enqueue(http, first), "completed")
    second = make_queue(url)["name"]
    wait_for_state(http, second, enqueue(http, second), "completed")

    got = receiver.for_path("/cookie")
    assert len(got) == 2 and all("cookie" not in r.headers for r in got), [r.headers for r in got]


# The SSRF guard -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with the default guard: no private networks, https only."""
    data_dir: Path = tmp_path_factory.mktemp("guarded") / "data"
    server = ServerProcess(data_dir=data_dir, env={"ROTOR_CALLBACKS_ALLOW_PRIVATE_NETWORKS": "false"}).start()
    yield server
    server.kill()


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hooks",
        "https://127.0.0.1/cb",
        "https://10.0.0.1/cb",
        "https://192.168.1.20/cb",
        "https://172.16.0.5/cb",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/cb",
        "https://[::ffff:127.0.0.1]/cb",
        "https://[fd00::1]/cb",
        "https://localhost/cb",
        "https://0.0.0.0/cb",
    ],
)
def test_guard_refuses_private_and_plain_http_callback_urls(guarded_server: ServerProcess, url: str) -> None:
    with guarded_server.client() as http:
        name = f"ssrf-{uuid.uuid4().hex[:8]}"
        error = assert_error(http.post("/v1/queues", json={"name": name, "callback_url": url}), 422, "VALIDATION_ERROR")
        assert error["details"].get("field") == "callback_url"
        assert_error(http.get(f"/v1/queues/{name}"), 404, "NOT_FOUND")


def test_guard_accepts_public_https_and_refuses_private_on_update(guarded_server: ServerProcess) -> None:
    with guarded_server.client() as http:
        name = f"ssrf-{uuid.uuid4().hex[:8]}"
        created = http.post("/v1/queues", json={"name": name, "callback_url": "https://example.com/hooks"})
        assert created.status_code == 201, created.text  # no job is enqueued: nothing is sent anywhere
        assert_error(http.patch(f"/v1/queues/{name}", json={"callback_url": "https://10.0.0.1/cb"}), 422, "VALIDATION_ERROR")
        assert http.get(f"/v1/queues/{name}").json()["callback_url"] == "https://example.com/hooks"


def _loopback_name() -> str | None:
    """A host name (not a literal address) that resolves to loopback only, if this machine has one."""
    for name in ("localhost.", "localhost.localdomain", "ip6-localhost", socket.gethostname()):
        try:
            found = {str(info[4][0]) for info in socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)}
        except OSError:
            continue
        if found and all(a.startswith("127.") or a == "::1" for a in found):
            return name
    return None


@pytest.mark.parametrize(
    "host", ["127.1", "2130706433", "0x7f.1", "name"], ids=["short-ipv4", "integer-ipv4", "hex-ipv4", "dns-name"]
)
def test_guard_never_connects_to_a_host_that_reaches_loopback(guarded_server: ServerProcess, host: str) -> None:
    """Hosts not written as a plain address that still lead to 127.0.0.1 are refused, at creation or at connect."""
    if host == "name":
        found = _loopback_name()
        if found is None:
            pytest.skip("no host name resolving to loopback on this machine")
        host = found
    with ConnectionCounter() as target, guarded_server.client() as http:
        name = f"ssrf-{uuid.uuid4().hex[:8]}"
        url = f"https://{host}:{target.port}/cb"
        created = http.post("/v1/queues", json={"name": name, "callback_url": url, "retry_attempts": 1})
        if created.status_code != 422:
            assert created.status_code == 201, created.text
            job_id = enqueue(http, name)  # the URL leads to our own loopback listener, nowhere else
            [attempt] = wait_for_state(http, name, job_id, "failed")["attemptLog"]
            assert attempt["status"] is None and attempt["outcome"] in {"error", "network"} and attempt["error"]
        assert target.accepted == 0
        socket.create_connection(("127.0.0.1", target.port), timeout=2).close()  # the listener does count
        wait_until(lambda: target.accepted == 1, timeout=2)
