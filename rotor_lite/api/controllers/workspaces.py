"""`/v1/workspaces`: the workspaces a key reaches, with their plans; team keys create new ones."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post

from rotor_lite.api.auth import Access
from rotor_lite.api.http import core_of, json_response, read_body
from rotor_lite.models import Principal, Role
from rotor_lite.schemas import WorkspaceCreate, WorkspaceList, WorkspaceOut
from rotor_lite.services import workspaces as service

_READ_ANY = Access(role=Role.VIEWER, any_workspace=True)
_CREATE = Access(role=Role.ADMIN, team_only=True, any_workspace=True)


class WorkspaceController(Controller):
    path = "/v1/workspaces"
    tags = ["Workspaces"]

    @get("/", opt={"access": _READ_ANY, "returns": WorkspaceList})
    async def list_workspaces(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """The workspaces the key can reach, with their plans and limits."""
        core = core_of(request)
        rows = await service.reachable_workspaces(core, principal)
        return json_response(WorkspaceList(data=[service.workspace_out(core, row) for row in rows]))

    @get("/{workspace_id:str}", opt={"access": _READ_ANY, "returns": WorkspaceOut})
    async def get_workspace(self, request: Request[Any, Any, Any], principal: Principal, workspace_id: str) -> Response[bytes]:
        """One workspace the key reaches, by id or name."""
        core = core_of(request)
        return json_response(service.workspace_out(core, await service.get_workspace(core, principal, workspace_id)))

    @post("/", status_code=201, opt={"access": _CREATE, "body": WorkspaceCreate, "returns": WorkspaceOut})
    async def create_workspace(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """A new workspace (plan default self-hosted) with its first admin key, shown once; team admin keys only."""
        spec = await read_body(request, WorkspaceCreate)
        return json_response(await service.create_workspace_for(core_of(request), principal, spec.name, spec.plan), 201)
