"""`/v1/secrets`: the vault. Values go in, never come out: responses carry names and hints."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, patch, post

from rotor_lite.api.auth import WRITE
from rotor_lite.api.http import core_of, json_response, read_body
from rotor_lite.models import Principal
from rotor_lite.schemas import SecretCreate, SecretRotate
from rotor_lite.services import secrets as service

# The service writes `secret.created|rotated|deleted` in the same transaction as the change.
_AUDITED_BY_SERVICE = {"audit": False}


class SecretController(Controller):
    path = "/v1/secrets"
    tags = ["Secrets"]

    @post("/", status_code=201, opt={"access": WRITE, **_AUDITED_BY_SERVICE})
    async def create_secret(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """Store `{name, value}` encrypted; 409 if the name exists. Returns the name and a hint."""
        spec = await read_body(request, SecretCreate)
        row = await service.create_secret(core_of(request), principal, spec.name, spec.value)
        return json_response(service.secret_out(row), 201)

    @get("/", opt={"access": WRITE})
    async def list_secrets(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """Names and hints, never values."""
        rows = await service.list_secrets(core_of(request), principal)
        return json_response({"data": [service.secret_out(row) for row in rows]})

    @patch("/{name:str}", opt={"access": WRITE, **_AUDITED_BY_SERVICE})
    async def rotate_secret(self, request: Request[Any, Any, Any], principal: Principal, name: str) -> Response[bytes]:
        """Replace the value (`{value}`); queued jobs use it from their next dispatch."""
        spec = await read_body(request, SecretRotate)
        row = await service.rotate_secret(core_of(request), principal, name, spec.value)
        return json_response(service.secret_out(row))

    @delete("/{name:str}", status_code=204, opt={"access": WRITE, **_AUDITED_BY_SERVICE})
    async def delete_secret(self, request: Request[Any, Any, Any], principal: Principal, name: str) -> None:
        """Delete the secret."""
        await service.delete_secret(core_of(request), principal, name)
