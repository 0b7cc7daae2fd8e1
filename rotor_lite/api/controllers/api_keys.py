"""`/v1/api-keys`: create (the key shown once), list, get, rotate with a grace period, revoke."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, post

from rotor_lite.api.auth import ADMIN
from rotor_lite.api.http import core_of, json_response, read_body
from rotor_lite.models import Principal
from rotor_lite.schemas import ApiKeyCreate, ApiKeyList, ApiKeyOut, ApiKeyRotate
from rotor_lite.services import api_keys as service


class ApiKeyController(Controller):
    path = "/v1/api-keys"
    tags = ["API keys"]

    @post("/", status_code=201, opt={"access": ADMIN, "body": ApiKeyCreate, "returns": ApiKeyOut})
    async def create_key(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """Mint a key (default role viewer, expiry 90 days); `key` is in this response only."""
        spec = await read_body(request, ApiKeyCreate)
        return json_response(await service.create_key(core_of(request), principal, spec), 201)

    @get("/", opt={"access": ADMIN, "returns": ApiKeyList})
    async def list_keys(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """The workspace's keys, never their key material."""
        return json_response(ApiKeyList(data=await service.list_keys(core_of(request), principal)))

    @get("/{key_id:str}", opt={"access": ADMIN, "returns": ApiKeyOut})
    async def get_key(self, request: Request[Any, Any, Any], principal: Principal, key_id: str) -> Response[bytes]:
        """One key of the workspace."""
        return json_response(await service.get_key(core_of(request), principal, key_id))

    @post("/{key_id:str}/rotate", status_code=201, opt={"access": ADMIN, "body": ApiKeyRotate, "returns": ApiKeyOut})
    async def rotate_key(self, request: Request[Any, Any, Any], principal: Principal, key_id: str) -> Response[bytes]:
        """A new key with the same label, role, scope and expiry; the old one works `graceSeconds` more (3600)."""
        spec = await read_body(request, ApiKeyRotate)
        return json_response(await service.rotate_key(core_of(request), principal, key_id, spec.grace_seconds), 201)

    @delete("/{key_id:str}", status_code=204, opt={"access": ADMIN})
    async def revoke_key(self, request: Request[Any, Any, Any], principal: Principal, key_id: str) -> None:
        """Revoke the key at once: its next request is a 401 saying it was revoked."""
        await service.revoke_key(core_of(request), principal, key_id)
