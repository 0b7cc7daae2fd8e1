"""`/v1/guardrails`: the workspace config, DNC list changes, and block statistics."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import Parameter

from rotor_lite.api.auth import READ, WRITE
from rotor_lite.api.http import core_of, json_response, page_limit, read_body
from rotor_lite.models import Principal
from rotor_lite.schemas import DncAppend, GuardrailUpdate, Page
from rotor_lite.services import guardrails as service

_SELF_AUDITED = {"audit": False}  # the service audits each change in its own transaction


class GuardrailController(Controller):
    path = "/v1/guardrails"
    tags = ["Guardrails"]

    @get("/", opt={"access": READ})
    async def get_config(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """The guardrail config (`grc_…`); each DNC list inline up to 10,000 entries, with its count."""
        return json_response(await service.get_config(core_of(request), principal))

    @patch("/", opt={"access": WRITE, **_SELF_AUDITED})
    async def update_config(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """Replace the fields given (a DNC list given replaces the whole list)."""
        spec = await read_body(request, GuardrailUpdate)
        return json_response(await service.update_config(core_of(request), principal, spec))

    @post("/dnc", status_code=200, opt={"access": WRITE, **_SELF_AUDITED})
    async def append_dnc(
        self, request: Request[Any, Any, Any], principal: Principal,
        return_: Annotated[str | None, Parameter(query="return")] = None,
    ) -> Response[bytes]:
        """Add `emails` and `domains` to the DNC lists; `?return=minimal` (or `Prefer: return=minimal`) answers `{added}`."""
        spec = await read_body(request, DncAppend)
        core = core_of(request)
        added = await service.append_dnc(core, principal, spec)
        if return_ == "minimal" or "return=minimal" in request.headers.get("prefer", ""):
            return json_response({"added": added})
        return json_response({**await service.get_config(core, principal), "added": added})

    @delete("/dnc/emails/{email:str}", status_code=204, opt={"access": WRITE, **_SELF_AUDITED})
    async def remove_email(self, request: Request[Any, Any, Any], principal: Principal, email: str) -> None:
        """Remove one email from the DNC list (404 when it is not on it)."""
        await service.remove_dnc(core_of(request), principal, "emails", email)

    @delete("/dnc/domains/{domain:str}", status_code=204, opt={"access": WRITE, **_SELF_AUDITED})
    async def remove_domain(self, request: Request[Any, Any, Any], principal: Principal, domain: str) -> None:
        """Remove one domain from the DNC list (404 when it is not on it)."""
        await service.remove_dnc(core_of(request), principal, "domains", domain)

    @get("/dnc/emails", opt={"access": READ})
    async def list_emails(
        self, request: Request[Any, Any, Any], principal: Principal, limit: int | None = None, cursor: str | None = None,
    ) -> Response[bytes]:
        """The DNC email list in order, a page at a time: `{data, nextCursor}`."""
        entries, next_cursor = await service.list_dnc(
            core_of(request), principal, "emails", limit=page_limit(limit), cursor=cursor
        )
        return json_response(Page(data=entries, nextCursor=next_cursor))

    @get("/dnc/domains", opt={"access": READ})
    async def list_domains(
        self, request: Request[Any, Any, Any], principal: Principal, limit: int | None = None, cursor: str | None = None,
    ) -> Response[bytes]:
        """The DNC domain list in order, a page at a time: `{data, nextCursor}`."""
        entries, next_cursor = await service.list_dnc(
            core_of(request), principal, "domains", limit=page_limit(limit), cursor=cursor
        )
        return json_response(Page(data=entries, nextCursor=next_cursor))

    @get("/stats", opt={"access": READ})
    async def stats(self, request: Request[Any, Any, Any], principal: Principal, days: int | None = None) -> Response[bytes]:
        """Blocked jobs per stage and UTC day over the last `days` days (default 30, at most 366)."""
        return json_response(await service.block_stats(core_of(request), principal, days))
