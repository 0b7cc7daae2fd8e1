"""Calling a `serve_workflow` app as rotor-lite does: signed protocol calls, over ASGI or real HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import msgspec

from rotor_lite.sdk import sign_rotor_payload
from tests.helpers import served  # noqa: F401 - the kit's callers serve apps too

SIGNING_KEY = "signkey_3q2+7w=="
RUN_ID = "run_0123456789abcdef"
EVENT = {"id": "evt_1", "name": "user.created", "data": {"userId": "u_1"}, "ts": 1767225600000}
PENDING = {"status": "pending"}


def completed(output: Any) -> dict[str, Any]:
    return {"status": "completed", "output": output}


def failed(name: str, message: str = "it failed") -> dict[str, Any]:
    return {"status": "failed", "error": {"name": name, "message": message}}


def run_call(function_id: str, steps: dict[str, Any] | None = None, target: str | None = None) -> dict[str, Any]:
    return {
        "v": 1, "kind": "run", "functionId": function_id, "runId": RUN_ID, "attempt": 1,
        "event": EVENT, "steps": steps or {}, "target": target,
    }


def hook_call(function_id: str, hook: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "kind": "hook", "functionId": function_id, "runId": RUN_ID, "attempt": 1,
            "event": EVENT, "hook": hook, **fields}


def signed(body: bytes, *, key: str = SIGNING_KEY, ts: int | None = None, run_id: str = RUN_ID) -> dict[str, str]:
    """The headers rotor-lite sends with `body`."""
    stamp = int(time.time()) if ts is None else ts
    return {
        "content-type": "application/json",
        "x-rotor-run-id": run_id,
        "x-rotor-function-id": "ignored",
        "x-rotor-attempt": "1",
        "x-rotor-timestamp": str(stamp),
        "x-rotor-signature": sign_rotor_payload(body, key, id=run_id, timestamp=stamp),
    }


async def post(app: Any, call: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    """POST `call` to the ASGI app, signed unless `headers` are given."""
    body = msgspec.json.encode(call)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        return await client.post("/", content=body, headers=headers if headers is not None else signed(body))


async def answer(app: Any, call: dict[str, Any]) -> Any:
    """The app's answer to a signed call; it must be a 200."""
    response = await post(app, call)
    assert response.status_code == 200, response.text
    return response.json()


def saved_from(answer: dict[str, Any]) -> dict[str, Any]:
    """The saved outcome rotor-lite keeps for a `step` answer."""
    if answer["status"] == "completed":
        return completed(answer["output"])
    return {"status": "failed", "error": answer["error"]}


