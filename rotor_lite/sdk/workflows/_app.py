"""`serve_workflow`: the ASGI app that answers rotor-lite's signed calls for a set of workflow functions."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from rotor_lite.sdk._client import AsyncRotor
from rotor_lite.sdk.errors import RotorError
from rotor_lite.sdk.signing import verify_rotor_signature
from rotor_lite.sdk.workflows._driver import answer_hook, answer_run
from rotor_lite.sdk.workflows._function import HOOK_NAMES, WorkflowFunction
from rotor_lite.sdk.workflows._protocol import PROTOCOL_VERSION, Answer, Call

__all__ = ["WorkflowApp", "serve_workflow"]

log = logging.getLogger("rotor_lite.sdk.workflows")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

REGISTER_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes

    @classmethod
    def refused(cls, status: int, code: str, message: str) -> _Reply:
        return cls(status, msgspec.json.encode({"error": {"code": code, "message": message}}))

    @classmethod
    def answer(cls, answer: Answer) -> _Reply:
        return cls(200, msgspec.json.encode(answer))


@dataclass(frozen=True, slots=True)
class _Registration:
    register_url: str
    serve_url: str
    api_key: str | None


class WorkflowApp:
    """The ASGI app made by `serve_workflow`: run it with uvicorn or mount it in Litestar, Starlette or FastAPI.

    It answers signed `POST`s from rotor-lite at whatever path it is mounted on. Under a server that
    sends it the ASGI lifespan it registers its functions on start when given `register_url`; a
    framework that does not pass its lifespan to mounted apps can `await app.register()` itself.
    """

    def __init__(
        self, functions: dict[str, WorkflowFunction], signing_key: str, registration: _Registration | None
    ) -> None:
        self.functions = functions
        self._signing_key = signing_key
        self._registration = registration

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            reply = await self._reply(scope, receive)
            await _send_reply(send, reply)

    async def register(self) -> list[Any]:
        """Register (or update) every function with `POST {register_url}/v1/functions`; returns the API's answers."""
        if self._registration is None:
            raise RotorError("serve_workflow(...) was not given a register_url to register the functions with")
        registration = self._registration
        async with AsyncRotor(registration.api_key, registration.register_url, timeout=REGISTER_TIMEOUT_S) as rotor:
            answers = [
                await rotor.request("POST", "/v1/functions", json=function.registration(registration.serve_url))
                for function in self.functions.values()
            ]
        log.info("workflow functions registered", extra={"functions": list(self.functions)})
        return answers

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send(await self._startup())
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _startup(self) -> Message:
        if self._registration is not None:
            try:
                await self.register()
            except Exception as exc:  # a failed start must say why, whatever went wrong
                message = f"registering the workflow functions failed: {exc}"
                return {"type": "lifespan.startup.failed", "message": message}
        return {"type": "lifespan.startup.complete"}

    async def _reply(self, scope: Scope, receive: Receive) -> _Reply:
        if scope.get("method") != "POST":
            return _Reply.refused(405, "METHOD_NOT_ALLOWED", "rotor-lite calls a workflow app with POST")
        headers = _headers(scope)
        body = await _read_body(receive)
        if not self._signed(headers, body):
            return _Reply.refused(401, "UNAUTHORIZED", "missing, invalid or stale x-rotor-signature")
        try:
            call = msgspec.json.decode(body, type=Call)
        except msgspec.DecodeError as exc:
            return _Reply.refused(400, "BAD_REQUEST", f"not a workflow call: {exc}")
        return await self._answer(call, headers)

    async def _answer(self, call: Call, headers: dict[str, str]) -> _Reply:
        if call.v != PROTOCOL_VERSION or call.run_id != headers.get("x-rotor-run-id"):
            return _Reply.refused(400, "BAD_REQUEST", f"expected protocol v{PROTOCOL_VERSION} for the signed run id")
        function = self.functions.get(call.function_id)
        if function is None:
            return _Reply.refused(404, "NOT_FOUND", f"no workflow function {call.function_id!r} is served here")
        if call.kind == "run":
            return _Reply.answer(await answer_run(function, call))
        if call.hook not in HOOK_NAMES:
            return _Reply.refused(400, "BAD_REQUEST", f"unknown hook {call.hook!r}")
        return _Reply.answer(await answer_hook(function, call))

    def _signed(self, headers: dict[str, str], body: bytes) -> bool:
        return verify_rotor_signature(
            body,
            headers.get("x-rotor-signature", ""),
            self._signing_key,
            id=headers.get("x-rotor-run-id", ""),
            timestamp=headers.get("x-rotor-timestamp", ""),
        )


def serve_workflow(
    *,
    functions: Sequence[WorkflowFunction],
    signing_key: str,
    register_url: str | None = None,
    serve_url: str | None = None,
    api_key: str | None = None,
) -> WorkflowApp:
    """An ASGI app that serves `functions` to rotor-lite, refusing calls not signed with `signing_key`.

    With `register_url` (the rotor-lite API's base URL) and `serve_url` (where rotor-lite reaches
    this app), the app registers its functions on start, with `api_key` (default `$ROTOR_API_KEY`).
    """
    if not isinstance(signing_key, str) or not signing_key:
        raise ValueError("serve_workflow needs the workspace's signing key (GET /v1/functions/signing-key)")
    return WorkflowApp(_by_id(functions), signing_key, _registration(register_url, serve_url, api_key))


def _by_id(functions: Sequence[WorkflowFunction]) -> dict[str, WorkflowFunction]:
    by_id: dict[str, WorkflowFunction] = {}
    for function in functions:
        if not isinstance(function, WorkflowFunction):
            raise TypeError(f"serve_workflow serves functions made with @create_function, not {function!r}")
        if function.id in by_id:
            raise ValueError(f"two workflow functions have the id {function.id!r}")
        by_id[function.id] = function
    if not by_id:
        raise ValueError("serve_workflow needs at least one function")
    return by_id


def _registration(register_url: str | None, serve_url: str | None, api_key: str | None) -> _Registration | None:
    if register_url is None:
        if serve_url is not None or api_key is not None:
            raise ValueError("serve_url and api_key are for self-registration: give register_url too")
        return None
    if not serve_url:
        raise ValueError("register_url needs serve_url: the URL at which rotor-lite calls this app")
    return _Registration(register_url=register_url, serve_url=serve_url, api_key=api_key)


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return b"".join(chunks)


async def _send_reply(send: Send, reply: _Reply) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(reply.body)).encode())]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
