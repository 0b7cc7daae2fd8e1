"""`/v1/functions`: register (create or update), list, get, delete; the workspace's signing key."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, post

from rotor_lite.api.auth import ADMIN, READ, WRITE
from rotor_lite.api.http import core_of, json_response, page_limit, read_body
from rotor_lite.clock import iso_from_ms
from rotor_lite.models import Function, Principal
from rotor_lite.schemas import FunctionCreate, FunctionOut, Page
from rotor_lite.services import functions as service
from rotor_lite.services.workflow_state import SigningKeys


class FunctionController(Controller):
    path = "/v1/functions"
    tags = ["Workflows"]

    @post("/", status_code=201, opt={"access": WRITE, "audit": "function.registered"})
    async def register_function(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """Register a workflow function: `201` when new, `200` when the id existed (it is updated)."""
        spec = await read_body(request, FunctionCreate)
        fn, created = await service.register_function(core_of(request), principal, spec)
        return json_response(function_out(fn), 201 if created else 200)

    @get("/", opt={"access": READ})
    async def list_functions(
        self, request: Request[Any, Any, Any], principal: Principal, limit: int | None = None, cursor: str | None = None
    ) -> Response[bytes]:
        """The workspace's functions, in registration order."""
        rows, next_cursor = await service.list_functions(core_of(request), principal, limit=page_limit(limit), cursor=cursor)
        return json_response(Page(data=[function_out(fn) for fn in rows], nextCursor=next_cursor))

    @get("/signing-key", opt={"access": ADMIN})
    async def get_signing_key(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """The key that signs every call to a serve URL (admin keys only)."""
        keys = await service.signing_keys(core_of(request), principal)
        return json_response(_keys_out(keys))

    @post("/signing-key/rotate", status_code=200, opt={"access": ADMIN, "audit": "function.signing_key_rotated"})
    async def rotate_signing_key(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """A new signing key; the old one keeps signing (both signatures are sent) for 24 hours."""
        keys = await service.rotate_signing_key(core_of(request), principal)
        return json_response(_keys_out(keys))

    @get("/{function_id:str}", opt={"access": READ})
    async def get_function(self, request: Request[Any, Any, Any], principal: Principal, function_id: str) -> Response[bytes]:
        """One function."""
        return json_response(function_out(await service.get_function(core_of(request), principal, function_id)))

    @delete("/{function_id:str}", status_code=204, opt={"access": WRITE})
    async def delete_function(self, request: Request[Any, Any, Any], principal: Principal, function_id: str) -> None:
        """Delete the function; its runs are kept (their next calls fail)."""
        await service.delete_function(core_of(request), principal, function_id)


def function_out(fn: Function) -> FunctionOut:
    return FunctionOut(
        id=fn.id, serve_url=fn.serve_url, trigger_type=fn.trigger_type, trigger_event=fn.trigger_event, cron=fn.cron,
        timezone=fn.timezone, retries=fn.retries, concurrency=fn.concurrency, hooks=fn.hooks,
        createdAt=iso_from_ms(fn.created_at) or "", updatedAt=iso_from_ms(fn.updated_at) or "",
    )


def _keys_out(keys: SigningKeys) -> dict[str, Any]:
    return {
        "signingKey": keys.current, "previousSigningKey": keys.previous,
        "previousExpiresAt": iso_from_ms(keys.previous_expires),
    }
