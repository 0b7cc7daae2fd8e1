"""Every method of the SDK's `Rotor` and `AsyncRotor` against a real `rotor-lite serve`.

One scenario, written once, runs with each client in a workspace of its own (so guardrails and
alerts of one run cannot touch the other). Every public method of the clients and of their resources
is wrapped to record that it ran; a method that the scenario never calls fails the test, so a new
SDK method needs a real-server test before the suite passes.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import inspect
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rotor_lite.sdk import (
    AsyncRotor, Rotor, RotorConflict, RotorIdempotencyConflict, RotorNotFound, RotorValidationError, Webhook,
    verify_rotor_signature,
)
from rotor_lite.sdk._request import APIRequest
from rotor_lite.sdk._resources import _Resource
from rotor_lite.sdk._schedules import ScheduleRuns
from rotor_lite.sdk import create_function, serve_workflow
from rotor_lite.sdk.workflows import Context, Step
from tests.helpers import Receiver, Reply, ServerProcess, offline, served

Client = Rotor | AsyncRotor
Exercised = set[tuple[str, Any]]  # (client class name, function)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as rec:
        yield rec


def public_functions(cls: type) -> dict[str, Any]:
    return {name: fn for name, fn in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")}


def resource_classes(client: Client) -> set[type]:
    return {type(value) for value in vars(client).values() if isinstance(value, _Resource)} | {ScheduleRuns}


def methods_of(client: Client) -> set[tuple[str, Any]]:
    """(client class, function) for every public method of the client and its resources; aliases count once."""
    classes = {type(client), *resource_classes(client)}
    return {(type(client).__name__, inspect.unwrap(fn)) for cls in classes for fn in public_functions(cls).values()}


@pytest.fixture(scope="module")
def exercised() -> Iterator[Exercised]:
    """Wrap every public SDK method so that a call records (calling client class, function)."""
    seen: Exercised = set()
    patch = pytest.MonkeyPatch()
    for client_cls in (Rotor, AsyncRotor):
        for cls in {client_cls, *resource_classes(client_cls(api_key="rt_ws_unused"))}:
            for name, fn in public_functions(cls).items():
                patch.setattr(cls, name, _recording(fn, seen))
    yield seen
    patch.undo()


def _recording(fn: Any, seen: Exercised) -> Any:
    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        owner = self if isinstance(self, (Rotor, AsyncRotor)) else self._send.__self__
        seen.add((type(owner).__name__, fn))
        return fn(self, *args, **kwargs)

    return wrapper


async def run(value: Any) -> Any:
    """A sync client's result as it is; an async client's awaited."""
    return await value if inspect.isawaitable(value) else value


async def until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll `check` (plain or async) until it returns something truthy, and return that."""
    async with asyncio.timeout(timeout):
        while not (found := await run(check())):
            await asyncio.sleep(0.02)
    return found


@pytest.mark.parametrize("client_cls", [Rotor, AsyncRotor])
async def test_every_sdk_method_against_a_real_server(
    shared_server: ServerProcess, receiver: Receiver, exercised: Exercised, client_cls: type[Client]
) -> None:
    kind = client_cls.__name__
    key = offline(shared_server.data_dir, "workspaces", "create", f"sdk-{kind}")["key"]
    rotor = client_cls(api_key=key, base_url=shared_server.url)
    try:
        await queues_and_jobs(rotor, receiver, f"/{kind}")
        await approvals(rotor, receiver, f"/{kind}")
        await schedules(rotor)
        await webhooks(rotor, receiver, f"/{kind}")
        await secrets_alerts_audit_status(rotor)
        await guardrails(rotor)
        await pull_workers(rotor)
        await workflows(rotor)
        await keys_and_workspaces(rotor, shared_server)
        if isinstance(rotor, Rotor):
            csv_text = "".join(rotor.iter_text(APIRequest("GET", "/v1/audit", params={"format": "csv"}, raw=True)))
            assert csv_text.startswith("id,workspace_id,event_type")
    finally:
        await run(rotor.close() if isinstance(rotor, Rotor) else rotor.aclose())

    missing = {f"{fn.__qualname__}" for key, fn in methods_of(rotor) - exercised if key == kind}
    assert not missing, f"SDK methods of {kind} that never met the real server: {sorted(missing)}"


async def queues_and_jobs(rotor: Client, receiver: Receiver, prefix: str) -> None:
    created = await run(rotor.queues.create(
        "orders", concurrency=2, retry_attempts=2, callback_url=receiver.url(f"{prefix}/orders"),
        callback_headers={"X-Env": "test"}, timeout_seconds=5,
        default_job_options={"backoff": {"type": "fixed", "delay": 10}},
    ))
    secret = created["callback_secret"]
    assert secret.startswith("rcs_") and created["defaultJobOptions"]["backoff"] == {"type": "fixed", "delay": 10}
    assert [q["name"] for q in (await run(rotor.queues.list()))["data"]] == ["orders"]
    assert (await run(rotor.queues.update("orders", concurrency=3)))["concurrency"] == 3
    assert (await run(rotor.queues.get("orders")))["callback_headers"] == {"X-Env": "test"}

    job = await run(rotor.jobs.enqueue("orders", {"n": 1}, job_id="order:1", tags=["t"], concurrency_key="c1", priority=1))
    assert (await run(rotor.jobs.enqueue("orders", {"n": 1}, job_id="order:1")))["duplicate"] is True
    with pytest.raises(RotorIdempotencyConflict):
        await run(rotor.jobs.enqueue("orders", {"n": 1}, job_id="order:1", strict=True))
    [second] = (await run(rotor.jobs.add_batch("orders", [{"payload": {"n": 2}, "job_id": "order:2"}])))["data"]
    done = await until(lambda: _job_in(rotor, "orders", job["id"], "completed"))
    assert done["result"] == {"ok": True} and done["attemptLog"][0]["outcome"] == "2xx"
    [got] = [r for r in receiver.for_path(f"{prefix}/orders") if r.job_id == job["id"]]
    assert verify_rotor_signature(got.body, got.headers["x-rotor-signature"], secret, id=got.job_id,
                                  timestamp=got.headers["x-rotor-timestamp"])
    await until(lambda: _job_in(rotor, "orders", second["id"], "completed"))
    listed = await run(rotor.jobs.list("orders", state="completed", tag="t", limit=10))
    assert [j["id"] for j in listed["data"]] == [job["id"]] and listed["nextCursor"] is None
    assert (await run(rotor.queues.stats("orders")))["completed"] == 2

    assert (await run(rotor.queues.pause("orders")))["state"] == "paused"
    waiting = await run(rotor.jobs.enqueue("orders", {"n": 3}))
    assert (await run(rotor.jobs.cancel("orders", waiting["id"])))["state"] == "cancelled"
    assert (await run(rotor.jobs.retry("orders", waiting["id"])))["state"] == "waiting"
    assert await run(rotor.queues.drain("orders")) == {"drained": 1}
    assert (await run(rotor.jobs.get("orders", waiting["id"])))["state"] == "cancelled"
    assert (await run(rotor.queues.resume("orders")))["state"] == "active"

    failing = f"{prefix}/orders"
    receiver.script(failing, *[Reply(500)] * 4)  # two attempts, then again two after the replay
    dead = await run(rotor.jobs.enqueue("orders", {"n": 4}))
    await until(lambda: _job_in(rotor, "orders", dead["id"], "failed"))
    assert [j["id"] for j in (await run(rotor.jobs.dlq(queue="orders")))["data"]] == [dead["id"]]
    assert await run(rotor.jobs.replay("orders", [dead["id"]])) == {"replayed": 1}
    await until(lambda: _job_in(rotor, "orders", dead["id"], "failed"))
    assert await run(rotor.jobs.retry_all("orders")) == {"retried": 1}
    await until(lambda: _job_in(rotor, "orders", dead["id"], "completed"))

    assert await run(rotor.queues.delete("orders")) is None
    with pytest.raises(RotorNotFound):
        await run(rotor.queues.get("orders"))


async def _job_in(rotor: Client, queue: str, job_id: str, state: str) -> dict[str, Any] | None:
    job = await run(rotor.jobs.get(queue, job_id))
    return dict(job) if job["state"] == state else None


async def approvals(rotor: Client, receiver: Receiver, prefix: str) -> None:
    await run(rotor.queues.create("gated", approval_required=True, callback_url=receiver.url(f"{prefix}/gated")))
    first, second = [await run(rotor.jobs.enqueue("gated", {"n": n})) for n in (1, 2)]
    assert first["state"] == second["state"] == "pending_approval"
    pending = (await run(rotor.approvals.list(status="pending", queue="gated")))["approvals"]
    by_job = {a["jobId"]: a["id"] for a in pending}
    assert set(by_job) == {first["id"], second["id"]}
    assert (await run(rotor.approvals.get(by_job[first["id"]])))["payload"] == {"n": 1}
    assert (await run(rotor.approvals.approve(by_job[first["id"]])))["status"] == "approved"
    rejected = await run(rotor.approvals.reject(by_job[second["id"]], reason="not today"))
    assert (rejected["status"], rejected["reason"]) == ("rejected", "not today")
    with pytest.raises(RotorConflict):
        await run(rotor.approvals.approve(by_job[second["id"]]))
    await until(lambda: _job_in(rotor, "gated", first["id"], "completed"))
    assert (await run(rotor.jobs.get("gated", second["id"])))["failReason"] == "rejected"


async def schedules(rotor: Client) -> None:
    await run(rotor.queues.create("reports"))
    made = await run(rotor.schedules.create(queue="reports", name="nightly", cron="0 3 * * *", timezone="Europe/Paris",
                                            payload={"report": "daily"}))
    assert made["description"] and made["next_fire_at"]
    assert [s["name"] for s in (await run(rotor.schedules.list()))["data"]] == ["nightly"]
    assert (await run(rotor.schedules.get("nightly")))["runs"] == []
    assert (await run(rotor.schedules.update(made["id"], cron="0 4 * * *")))["cron"] == "0 4 * * *"
    assert (await run(rotor.schedules.pause(made["id"])))["enabled"] is False
    assert (await run(rotor.schedules.resume(made["id"])))["enabled"] is True
    fired = await run(rotor.schedules.fire_now(made["id"]))
    [run_row] = (await run(rotor.schedules.runs(made["id"]).list(limit=5)))["runs"]
    assert (run_row["id"], run_row["job_id"], run_row["manual"]) == (fired["runId"], fired["jobId"], True)
    preview = await run(rotor.schedules.preview("0 9 * * 1-5", "UTC", from_="2026-06-05T12:00:00Z", count=3))
    assert preview["next"] == ["2026-06-08T09:00:00.000Z", "2026-06-09T09:00:00.000Z", "2026-06-10T09:00:00.000Z"]
    assert await run(rotor.schedules.delete(made["id"])) is None
    with pytest.raises(RotorNotFound):
        await run(rotor.schedules.get(made["id"]))


async def webhooks(rotor: Client, receiver: Receiver, prefix: str) -> None:
    path = f"{prefix}/hooks"
    hook = await run(rotor.webhooks.create(receiver.url(path), ["job.completed"]))
    assert hook["secret"].startswith("whsec_")
    assert [h["id"] for h in (await run(rotor.webhooks.list()))["data"]] == [hook["id"]]
    assert (await run(rotor.webhooks.get(hook["id"])))["url"] == receiver.url(path)
    updated = await run(rotor.webhooks.update(hook["id"], event_types=["job.completed", "job.failed"], enabled=True))
    assert updated["eventTypes"] == ["job.completed", "job.failed"]
    await run(rotor.webhooks.test(hook["id"]))
    await until(lambda: receiver.for_path(path))
    event = Webhook(hook["secret"]).verify(receiver.for_path(path)[0].body, receiver.for_path(path)[0].headers)
    assert event["type"] == "webhook.test"
    [delivery] = (await run(rotor.webhooks.deliveries(hook["id"], limit=5)))["data"]
    await run(rotor.webhooks.redeliver(hook["id"], delivery["id"]))
    await until(lambda: len(receiver.for_path(path)) == 2)
    rotated = await run(rotor.webhooks.rotate_secret(hook["id"]))
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != hook["secret"]
    assert await run(rotor.webhooks.delete(hook["id"])) is None


async def secrets_alerts_audit_status(rotor: Client) -> None:
    made = await run(rotor.secrets.create("API_TOKEN", "tok-1234567890"))
    assert made["name"] == "API_TOKEN" and "1234567890" not in made["value_hint"]
    assert [s["name"] for s in (await run(rotor.secrets.list()))["data"]] == ["API_TOKEN"]
    await run(rotor.secrets.rotate("API_TOKEN", "tok-0987654321"))
    assert await run(rotor.secrets.delete("API_TOKEN")) is None
    with pytest.raises(RotorValidationError):
        await run(rotor.secrets.create("lower-case", "x"))

    assert (await run(rotor.alerts.set(email="ops@example.com")))["email"] == "ops@example.com"
    assert (await run(rotor.alerts.get()))["email"] == "ops@example.com"
    assert (await run(rotor.alerts.set()))["email"] is None

    created = (await run(rotor.audit.list(event_type="queue.created", limit=10)))["data"]
    assert {e["resource_id"] for e in created} == {"orders", "gated", "reports"}
    rows = list(csv.DictReader(io.StringIO(await run(rotor.audit.export_csv(resource_type="secret")))))
    assert [r["event_type"] for r in rows] == ["secret.created", "secret.rotated", "secret.deleted"]

    status = await run(rotor.status.get())
    assert (status["api"], status["database"]) == ("ok", "ok")
    assert (await run(rotor.request("GET", "/v1/status")))["version"] == status["version"]
    usage = await run(rotor.usage.current())
    assert usage["executions"]["byQueue"] == {"orders": 4, "gated": 2, "reports": 1}


async def guardrails(rotor: Client) -> None:
    config = await run(rotor.guardrails.get())
    assert config["id"].startswith("grc_")
    updated = await run(rotor.guardrails.update(competitor_domains=["rival.example"], pii_redaction_enabled=False))
    assert updated["competitorDomains"] == ["rival.example"]
    await run(rotor.guardrails.append_dnc(emails=["no@dnc.example"], domains=["blocked.example"]))
    assert (await run(rotor.guardrails.list_dnc("emails")))["data"] == ["no@dnc.example"]
    assert (await run(rotor.guardrails.list_dnc("domains")))["data"] == ["blocked.example"]
    await run(rotor.queues.create("screened"))
    blocked = await run(rotor.jobs.enqueue("screened", {"to": "no@dnc.example"}))
    assert (blocked["state"], blocked["blockedBy"]) == ("guardrail.blocked", "dnc")
    stats = await run(rotor.guardrails.stats(days=7))
    assert "dnc" in json.dumps(stats)
    assert await run(rotor.guardrails.remove_dnc_email("no@dnc.example")) is None
    assert await run(rotor.guardrails.remove_dnc_domain("blocked.example")) is None
    assert (await run(rotor.guardrails.get()))["dncEmails"] == []


async def pull_workers(rotor: Client) -> None:
    made = await run(rotor.queues.create("pulled", concurrency=2, fairness={"key": "payload.tenant"},
                                         rate_limit={"key": "payload.tenant", "max": 100, "per": "1s"}))
    assert (made["fairness"], made["rateLimit"]["per"]) == ({"key": "payload.tenant"}, "1s")
    first, second = [await run(rotor.jobs.enqueue("pulled", {"tenant": t})) for t in ("a", "b")]
    leased = (await run(rotor.jobs.lease("pulled", max=2, lease_seconds=60, wait_seconds="1s")))["data"]
    assert sorted(job["id"] for job in leased) == sorted([first["id"], second["id"]])
    token = {job["id"]: job["leaseToken"] for job in leased}
    assert (await run(rotor.jobs.heartbeat("pulled", first["id"], token[first["id"]], lease_seconds=30)))["state"] == "active"
    assert await run(rotor.jobs.complete("pulled", first["id"], token[first["id"]], {"ok": 1})) == {
        "id": first["id"], "state": "completed"}
    assert (await run(rotor.jobs.fail("pulled", second["id"], token[second["id"]], "no", retry=False)))["state"] == "failed"
    with pytest.raises(RotorConflict):
        await run(rotor.jobs.complete("pulled", first["id"], token[first["id"]]))
    third = await run(rotor.jobs.enqueue("pulled", {"tenant": "c"}))
    [again] = (await run(rotor.jobs.lease("pulled")))["data"]
    answered = await run(rotor.jobs.report("pulled", [{"id": third["id"], "lease_token": again["leaseToken"], "result": 3},
                                                      {"id": first["id"], "lease_token": token[first["id"]]}]))
    assert [a.get("state") or a["error"]["code"] for a in answered["data"]] == ["completed", "CONFLICT"]
    unset = await run(rotor.queues.update("pulled", fairness=False, rate_limit=False))
    assert (unset["fairness"], unset["rateLimit"]) == (None, None)
    assert await run(rotor.queues.delete("pulled")) is None


@create_function(id="sdk-gate", trigger={"event": "sdk.gate"}, retries=0)
async def gate(ctx: Context, step: Step) -> Any:
    answer = await step.wait_for_signal("gate", signal=f"gate-{ctx.run_id}", timeout="1h")
    return {"answer": answer}


async def workflows(rotor: Client) -> None:
    key = (await run(rotor.functions.signing_key()))["signingKey"]
    rotated = await run(rotor.functions.rotate_signing_key())
    assert rotated["previousSigningKey"] == key  # the old key keeps signing while apps move to the new one
    with served(serve_workflow(functions=[gate], signing_key=rotated["signingKey"])) as url:
        assert (await run(rotor.functions.register("sdk-gate", serve_url=url + "/", event="sdk.gate")))["id"] == "sdk-gate"
        assert [f["id"] for f in (await run(rotor.functions.list()))["data"]] == ["sdk-gate"]
        assert (await run(rotor.functions.get("sdk-gate")))["trigger_event"] == "sdk.gate"
        [first] = (await run(rotor.send("sdk.gate", {"n": 1})))["runIds"]
        [second] = (await run(rotor.workflow.trigger("sdk.gate", {"n": 2}, idempotency_key="k2")))["runIds"]
        assert (await run(rotor.workflow.trigger("sdk.gate", {"n": 2}, idempotency_key="k2")))["duplicate"] is True
        await until(lambda: _waiting(rotor, first))
        assert (await run(rotor.signals.complete(f"gate-{first}", {"ok": True})))["runId"] == first
        done = await until(lambda: _ended(rotor, first))
        assert done["output"] == {"answer": {"ok": True}}
        assert (await run(rotor.runs.cancel(second)))["status"] == "cancelled"
        replayed = await run(rotor.runs.replay(second))
        assert replayed["id"] != second and replayed["replayOf"] == second
        listed = await run(rotor.runs.list(function="sdk-gate", status="completed"))
        assert [r["id"] for r in listed["data"]] == [first]
        await run(rotor.runs.cancel(replayed["id"]))
        assert await run(rotor.functions.delete("sdk-gate")) is None


async def keys_and_workspaces(rotor: Client, server: ServerProcess) -> None:
    made = await run(rotor.api_keys.create("sdk-viewer"))
    assert made["role"] == "viewer" and made["key"].startswith("rt_ws_") and made["expiresAt"]
    assert made["id"] in [k["id"] for k in (await run(rotor.api_keys.list()))["data"]]
    assert "key" not in await run(rotor.api_keys.get(made["id"]))
    rotated = await run(rotor.api_keys.rotate(made["id"], grace_seconds=0))
    assert rotated["id"] != made["id"] and rotated["role"] == "viewer"
    assert await run(rotor.api_keys.revoke(rotated["id"])) is None
    assert (await run(rotor.api_keys.get(rotated["id"])))["revokedAt"] is not None
    never = await run(rotor.api_keys.create("sdk-forever", role="developer", never_expires=True))
    assert never["expiresAt"] is None

    [own] = (await run(rotor.workspaces.list()))["data"]
    assert (await run(rotor.workspaces.get(own["name"])))["plan"] == "self-hosted"
    team = (await run(rotor.api_keys.create("sdk-team", type="team", role="admin")))["key"]
    as_team = type(rotor)(api_key=team, base_url=server.url, workspace=own["name"])
    try:
        created = await run(as_team.workspaces.create(f"{own['name']}-pro", plan="pro"))
        assert created["limits"]["jobsPerMonth"] == 100_000 and created["apiKey"]["key"].startswith("rt_ws_")
        assert [q["name"] for q in (await run(as_team.queues.list()))["data"]] == \
               [q["name"] for q in (await run(rotor.queues.list()))["data"]]  # X-Rotor-Workspace: its own
    finally:
        await run(as_team.close() if isinstance(as_team, Rotor) else as_team.aclose())


async def _waiting(rotor: Client, run_id: str) -> bool:
    return bool((await run(rotor.runs.get(run_id)))["status"] == "waiting")


async def _ended(rotor: Client, run_id: str) -> Any:
    found = await run(rotor.runs.get(run_id))
    return found if found["status"] == "completed" else None
