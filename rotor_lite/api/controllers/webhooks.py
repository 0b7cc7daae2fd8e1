"""`/v1/webhooks`: create, list, get, update, delete, test, rotate-secret, deliveries, redeliver."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import Parameter

from rotor_lite.api.auth import READ, WRITE
from rotor_lite.clock import iso_from_ms
from rotor_lite.api.http import core_of, json_response, page_limit, read_body
from rotor_lite.models import Principal
from rotor_lite.schemas import Page, WebhookCreate, WebhookUpdate
from rotor_lite.services import webhooks as service


class WebhookController(Controller):
    path = "/v1/webhooks"
    tags = ["Webhooks"]

    @post("/", status_code=201, opt={"access": WRITE})
    async def create_webhook(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """Register an endpoint for `eventTypes`; the response carries its `secret` (whsec_…) this once."""
        spec = await read_body(request, WebhookCreate)
        row, secret = await service.create_webhook(core_of(request), principal, spec)
        return json_response(service.webhook_out(row, secret), 201)

    @get("/", opt={"access": READ})
    async def list_webhooks(self, request: Request[Any, Any, Any], principal: Principal) -> Response[bytes]:
        """Every endpoint of the workspace."""
        rows = await service.list_webhooks(core_of(request), principal)
        return json_response({"data": [service.webhook_out(row) for row in rows]})

    @get("/{webhook_id:str}", opt={"access": READ})
    async def get_webhook(self, request: Request[Any, Any, Any], principal: Principal, webhook_id: str) -> Response[bytes]:
        """One endpoint (never its secret)."""
        return json_response(service.webhook_out(await service.get_webhook(core_of(request), principal, webhook_id)))

    @patch("/{webhook_id:str}", opt={"access": WRITE, "audit": "webhook.updated"})
    async def update_webhook(self, request: Request[Any, Any, Any], principal: Principal, webhook_id: str) -> Response[bytes]:
        """Change `url` or `eventTypes`; an update re-enables a disabled endpoint (unless `enabled: false`)."""
        spec = await read_body(request, WebhookUpdate)
        row = await service.update_webhook(core_of(request), principal, webhook_id, spec)
        return json_response(service.webhook_out(row))

    @delete("/{webhook_id:str}", status_code=204, opt={"access": WRITE})
    async def delete_webhook(self, request: Request[Any, Any, Any], principal: Principal, webhook_id: str) -> None:
        """Delete the endpoint; deliveries not yet sent are dropped."""
        await service.delete_webhook(core_of(request), principal, webhook_id)

    @post("/{webhook_id:str}/test", status_code=202, opt={"access": WRITE})
    async def test_webhook(self, request: Request[Any, Any, Any], principal: Principal, webhook_id: str) -> Response[bytes]:
        """Send a signed `webhook.test` event to this endpoint."""
        delivery = await service.send_test(core_of(request), principal, webhook_id)
        return json_response(service.delivery_out(delivery), 202)

    @post("/{webhook_id:str}/rotate-secret", status_code=200, opt={"access": WRITE, "audit": "webhook.secret_rotated"})
    async def rotate_secret(self, request: Request[Any, Any, Any], principal: Principal, webhook_id: str) -> Response[bytes]:
        """A new signing secret, returned this once; the old one keeps verifying for 24 h."""
        row, secret = await service.rotate_secret(core_of(request), principal, webhook_id)
        return json_response({
            "id": row.id, "secret": secret, "previousSecretExpiresAt": iso_from_ms(row.previous_expires_at),
        })

    @get("/{webhook_id:str}/deliveries", opt={"access": READ})
    async def list_deliveries(
        self, request: Request[Any, Any, Any], principal: Principal, webhook_id: str,
        delivery_status: Annotated[str | None, Parameter(query="status")] = None,
        limit: int | None = None, cursor: str | None = None,
    ) -> Response[bytes]:
        """The endpoint's delivery log, newest first: status, attempts, response code, next attempt."""
        rows, next_cursor = await service.list_deliveries(
            core_of(request), principal, webhook_id, status=delivery_status, limit=page_limit(limit), cursor=cursor
        )
        return json_response(Page(data=[service.delivery_out(row) for row in rows], nextCursor=next_cursor))

    @post("/{webhook_id:str}/deliveries/{message_id:str}/redeliver", status_code=202, opt={"access": WRITE})
    async def redeliver(
        self, request: Request[Any, Any, Any], principal: Principal, webhook_id: str, message_id: str
    ) -> Response[bytes]:
        """Send a delivery again (same message id and body, fresh retry schedule)."""
        row = await service.redeliver(core_of(request), principal, webhook_id, message_id)
        return json_response(service.delivery_out(row), 202)
