"""The ASGI app of serve_workflow: signed calls only, routing, hooks, lifespan self-registration."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest

from rotor_lite.sdk import RotorError, WorkflowError, create_function, serve_workflow, sign_rotor_payload
from rotor_lite.sdk.workflows import Context, Step, WorkflowApp, _driver
from tests.helpers import Receiver, Reply
from tests.unit.sdk.workflow_kit import (
    RUN_ID,
    SIGNING_KEY,
    answer,
    hook_call,
    post,
    run_call,
    served,
    signed,
)

TRIGGER = {"event": "user.created"}


@create_function(id="plain", trigger=TRIGGER)
async def plain(ctx: Context, step: Step) -> Any:
    return {"ok": True}


def app_for(*functions: Any, **options: Any) -> WorkflowApp:
    return serve_workflow(functions=list(functions) or [plain], signing_key=SIGNING_KEY, **options)


BODY = msgspec.json.encode(run_call("plain"))


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda: {}, id="unsigned"),
        pytest.param(lambda: signed(BODY, key="another-key"), id="wrong-key"),
        pytest.param(lambda: signed(BODY, ts=int(time.time()) - 301), id="stale"),
        pytest.param(lambda: signed(BODY, ts=int(time.time()) + 301), id="from-the-future"),
        pytest.param(
            lambda: {**signed(BODY), "x-rotor-signature": signed(BODY, run_id="run_other")["x-rotor-signature"]},
            id="signed-for-another-run",
        ),
        pytest.param(lambda: {**signed(BODY), "x-rotor-signature": "v1,AAAA"}, id="garbage"),
    ],
)
async def test_calls_not_signed_with_the_key_are_refused(headers: Callable[[], dict[str, str]]) -> None:
    response = await post(app_for(), run_call("plain"), headers=headers())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


async def test_a_tampered_body_is_refused() -> None:
    tampered = run_call("plain") | {"attempt": 2}
    response = await post(app_for(), tampered, headers=signed(BODY))
    assert response.status_code == 401


async def test_either_signature_of_a_key_rotation_is_enough() -> None:
    stamp = int(time.time())
    old = sign_rotor_payload(BODY, "old-key", id=RUN_ID, timestamp=stamp)
    headers = {**signed(BODY, ts=stamp), "x-rotor-signature": f"{old} {signed(BODY, ts=stamp)['x-rotor-signature']}"}
    response = await post(app_for(), run_call("plain"), headers=headers)
    assert response.status_code == 200 and response.json() == {"type": "complete", "output": {"ok": True}}


async def test_a_body_for_another_run_than_the_signed_one_is_400() -> None:
    response = await post(app_for(), run_call("plain"), headers=signed(BODY, run_id="run_other"))
    assert response.status_code == 400


async def test_an_unknown_function_is_404() -> None:
    response = await post(app_for(), run_call("nobody"))
    assert response.status_code == 404 and "nobody" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "call",
    [
        {"v": 1, "kind": "run"},
        run_call("plain") | {"v": 2},
        run_call("plain") | {"kind": "dance"},
        hook_call("plain", "on_party"),
    ],
)
async def test_a_signed_body_that_is_not_a_call_is_400(call: dict[str, Any]) -> None:
    response = await post(app_for(), call)
    assert response.status_code == 400


async def test_only_post_is_answered() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_for()), base_url="http://app") as client:
        assert (await client.get("/")).status_code == 405


def hooked(record: list[Any], *, fail: bool = False) -> Any:
    async def on_success(ctx: Context, result: Any) -> None:
        record.append(("on_success", ctx.run_id, result))
        if fail:
            raise RuntimeError("slack is down")

    async def on_failure(ctx: Context, error: WorkflowError) -> None:
        record.append(("on_failure", ctx.function_id, type(error).__name__, error.name, error.message))

    async def on_cancel(ctx: Context) -> None:
        record.append(("on_cancel", ctx.event.name))

    return create_function(
        id="hooked", trigger=TRIGGER, on_success=on_success, on_failure=on_failure, on_cancel=on_cancel
    )(plain.handler)


async def test_each_hook_is_called_with_what_the_run_ended_with() -> None:
    record: list[Any] = []
    app = app_for(hooked(record))
    calls = [
        hook_call("hooked", "on_success", output={"sent": True}),
        hook_call("hooked", "on_failure", error={"name": "ValueError", "message": "bad"}),
        hook_call("hooked", "on_failure", error={"name": "SignalTimeoutError", "message": "no signal"}),
        hook_call("hooked", "on_cancel"),
    ]
    for call in calls:
        reply = await answer(app, call)
        assert reply["type"] == "hook" and reply["ok"] is True and isinstance(reply["durationMs"], int)
    assert record == [
        ("on_success", RUN_ID, {"sent": True}),
        ("on_failure", "hooked", "WorkflowError", "ValueError", "bad"),
        ("on_failure", "hooked", "SignalTimeoutError", "SignalTimeoutError", "no signal"),
        ("on_cancel", "user.created"),
    ]


async def test_a_failing_hook_is_reported_not_raised() -> None:
    reply = await answer(app_for(hooked([], fail=True)), hook_call("hooked", "on_success", output=None))
    assert reply["ok"] is False and reply["error"] == {"name": "RuntimeError", "message": "slack is down"}


async def test_a_hook_the_function_does_not_declare_is_reported() -> None:
    reply = await answer(app_for(), hook_call("plain", "on_cancel"))
    assert reply["ok"] is False and reply["error"]["name"] == "HookNotDeclaredError"


async def test_a_slow_hook_is_measured_not_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_driver, "HOOK_SOFT_TIMEOUT_S", 0.01)
    finished: list[bool] = []

    async def on_cancel(ctx: Context) -> None:
        await asyncio.sleep(0.05)
        finished.append(True)

    slow = create_function(id="slow", trigger=TRIGGER, on_cancel=on_cancel)(plain.handler)
    reply = await answer(app_for(slow), hook_call("slow", "on_cancel"))
    assert reply["ok"] is True and reply["durationMs"] >= 50 and finished == [True]


def test_registration_bodies_follow_the_api() -> None:
    cron = create_function(
        id="nightly", trigger={"cron": "0 2 * * *", "timezone": "Europe/Paris"}, retries=0, concurrency=2
    )(plain.handler)
    assert cron.registration("http://app/rotor") == {
        "id": "nightly", "serve_url": "http://app/rotor", "trigger_type": "cron", "cron": "0 2 * * *",
        "timezone": "Europe/Paris", "retries": 0, "concurrency": 2, "hooks": [],
    }
    assert hooked([]).registration("http://app/rotor") == {
        "id": "hooked", "serve_url": "http://app/rotor", "trigger_type": "event", "trigger_event": "user.created",
        "retries": 3, "hooks": ["on_success", "on_failure", "on_cancel"],
    }


def test_the_app_registers_its_functions_when_it_starts(receiver: Receiver) -> None:
    receiver.script("/v1/functions", Reply(status=201), Reply(status=200))
    app = app_for(plain, hooked([]), register_url=receiver.url(""), serve_url="http://127.0.0.1:9/rotor",
                  api_key="rt_ws_key")
    with served(app):
        registered = receiver.for_path("/v1/functions")
        assert [request.json()["id"] for request in registered] == ["plain", "hooked"]
        assert registered[1].json()["hooks"] == ["on_success", "on_failure", "on_cancel"]
        assert all(request.headers["authorization"] == "Bearer rt_ws_key" for request in registered)


def test_a_failed_registration_stops_the_start(receiver: Receiver) -> None:
    receiver.script("/v1/functions", Reply(status=401, body=b'{"error":{"code":"UNAUTHORIZED","message":"bad key"}}'))
    app = app_for(register_url=receiver.url(""), serve_url="http://127.0.0.1:9/rotor", api_key="rt_ws_wrong")
    with pytest.raises(AssertionError, match="did not start"), served(app):
        pass


async def test_register_can_be_called_by_a_framework_lifespan(receiver: Receiver) -> None:
    app = app_for(register_url=receiver.url(""), serve_url="http://127.0.0.1:9/rotor", api_key="rt_ws_key")
    assert await app.register() == [{"ok": True}]
    assert await app.register() == [{"ok": True}]
    assert len(receiver.for_path("/v1/functions")) == 2


async def test_register_needs_a_register_url() -> None:
    with pytest.raises(RotorError, match="register_url"):
        await app_for().register()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"functions": []}, ValueError),
        ({"functions": [plain, plain]}, ValueError),
        ({"functions": [plain.handler]}, TypeError),
        ({"functions": [plain], "signing_key": ""}, ValueError),
        ({"functions": [plain], "register_url": "http://rotor"}, ValueError),
        ({"functions": [plain], "serve_url": "http://app"}, ValueError),
    ],
)
def test_serve_workflow_refuses_a_bad_setup(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        serve_workflow(**{"signing_key": SIGNING_KEY, **options})


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"id": "", "trigger": TRIGGER}, ValueError),
        ({"id": "f", "trigger": {"event": ""}}, ValueError),
        ({"id": "f", "trigger": {"cron": "0 2 * * *"}}, ValueError),
        ({"id": "f", "trigger": {"cron": "0 2 * * *", "timezone": "Mars/Olympus"}}, ValueError),
        ({"id": "f", "trigger": {"event": "e", "cron": "* * * * *"}}, ValueError),
        ({"id": "f", "trigger": TRIGGER, "retries": -1}, ValueError),
        ({"id": "f", "trigger": TRIGGER, "concurrency": 0}, ValueError),
        ({"id": "f", "trigger": TRIGGER, "on_success": lambda ctx, result: None}, TypeError),
    ],
)
def test_create_function_refuses_a_bad_definition(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        create_function(**options)


def test_a_workflow_function_must_be_async() -> None:
    def sync_handler(ctx: Context, step: Step) -> None:
        return None

    with pytest.raises(TypeError, match="async"):
        create_function(id="f", trigger=TRIGGER)(sync_handler)  # type: ignore[arg-type]

