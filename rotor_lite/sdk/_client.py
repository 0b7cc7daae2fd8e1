"""`Rotor` and `AsyncRotor`: the same resources over a sync or an async httpx client."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Iterator
from types import TracebackType
from typing import Any, Self

import httpx
import msgspec

from rotor_lite.sdk._access import ApiKeys, Workspaces
from rotor_lite.sdk._request import APIRequest, compact
from rotor_lite.sdk._resources import Jobs, Queues, Status, Usage
from rotor_lite.sdk._approvals import Approvals, Guardrails
from rotor_lite.sdk._schedules import Schedules
from rotor_lite.sdk._notifications import Alerts, Audit, Secrets, Webhooks
from rotor_lite.sdk._workflow_resources import Functions, Runs, Signals, Workflow, event_request
from rotor_lite.sdk.errors import RotorError, error_from_response

__all__ = ["DEFAULT_BASE_URL", "AsyncRotor", "Rotor"]

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
USER_AGENT = "rotor-lite-python/0.1.0"


class _BaseClient:
    """Configuration, request building and response decoding shared by both clients."""

    def __init__(self, api_key: str | None, base_url: str | None, workspace: str | None) -> None:
        self.api_key = api_key if api_key is not None else os.environ.get("ROTOR_API_KEY")
        self.base_url = (base_url or os.environ.get("ROTOR_API_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.workspace = workspace if workspace is not None else os.environ.get("ROTOR_WORKSPACE") or None

    def _auth_headers(self) -> dict[str, str]:
        if not self.api_key:
            raise RotorError("No Rotor API key: pass api_key=... or set the ROTOR_API_KEY environment variable")
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if self.workspace:
            headers["X-Rotor-Workspace"] = self.workspace  # the workspace a team key acts in
        return headers

    def _build(self, http: httpx.Client | httpx.AsyncClient, request: APIRequest) -> httpx.Request:
        headers = self._auth_headers()
        content = None
        if request.json is not None:
            content = msgspec.json.encode(request.json)
            headers["Content-Type"] = "application/json"
        params = compact(request.params or {})
        return http.build_request(request.method, request.path, content=content, params=params or None, headers=headers)

    def _transport_error(self, exc: httpx.HTTPError) -> RotorError:
        return RotorError(f"Could not reach the Rotor API at {self.base_url}: {str(exc) or type(exc).__name__}")


def _decode(response: httpx.Response, raw: bool = False) -> Any:
    """The decoded JSON of a 2xx response (None when it has no body); raises for any other status."""
    if not response.is_success:
        raise error_from_response(
            response.status_code, response.content, response.headers, reason=response.reason_phrase
        )
    if raw:
        return response.text
    if response.status_code == 204 or not response.content.strip():
        return None
    try:
        return msgspec.json.decode(response.content)
    except msgspec.DecodeError as exc:
        raise RotorError(f"The Rotor API returned invalid JSON (HTTP {response.status_code})") from exc


def _http_options(base_url: str, timeout: float | httpx.Timeout) -> dict[str, Any]:
    return {
        "base_url": base_url,
        "timeout": timeout,
        "headers": {"User-Agent": USER_AGENT, "Accept": "application/json"},
        "follow_redirects": False,
    }


class Rotor(_BaseClient):
    """Synchronous client for the rotor-lite API.

    `api_key` defaults to `$ROTOR_API_KEY`, `base_url` to `$ROTOR_API_URL` or http://127.0.0.1:8080.
    `workspace` (id or name, default `$ROTOR_WORKSPACE`) is the workspace a team key (`rt_team_`) acts in.
    Methods return the decoded JSON exactly as the API sends it and raise `RotorAPIError`
    subclasses for error responses, `RotorError` when the API cannot be reached.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        transport: httpx.BaseTransport | None = None,
        workspace: str | None = None,
    ) -> None:
        super().__init__(api_key, base_url, workspace)
        self._http = httpx.Client(transport=transport, **_http_options(self.base_url, timeout))
        self.queues: Queues[Any] = Queues(self.execute)
        self.jobs: Jobs[Any] = Jobs(self.execute)
        self.status: Status[Any] = Status(self.execute)
        self.usage: Usage[Any] = Usage(self.execute)
        self.approvals: Approvals[Any] = Approvals(self.execute)
        self.guardrails: Guardrails[Any] = Guardrails(self.execute)
        self.schedules: Schedules[Any] = Schedules(self.execute)
        self.webhooks: Webhooks[Any] = Webhooks(self.execute)
        self.secrets: Secrets[Any] = Secrets(self.execute)
        self.alerts: Alerts[Any] = Alerts(self.execute)
        self.audit: Audit[Any] = Audit(self.execute)
        self.functions: Functions[Any] = Functions(self.execute)
        self.runs: Runs[Any] = Runs(self.execute)
        self.signals: Signals[Any] = Signals(self.execute)
        self.workflow: Workflow[Any] = Workflow(self.execute)
        self.api_keys: ApiKeys[Any] = ApiKeys(self.execute)
        self.workspaces: Workspaces[Any] = Workspaces(self.execute)

    def execute(self, request: APIRequest) -> Any:
        """Execute one API request and return its decoded JSON."""
        http_request = self._build(self._http, request)
        try:
            response = self._http.send(http_request)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        return _decode(response, request.raw)

    def send(self, name: str, data: Any = None, *, idempotency_key: str | None = None, ts: int | None = None) -> Any:
        """Send the event `name` with `data`: starts the functions it triggers, resumes runs waiting for it."""
        return self.execute(event_request(name, data, idempotency_key=idempotency_key, ts=ts))

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """Call any API route not covered by a resource, e.g. `request("GET", "/v1/schedules")`."""
        return self.execute(APIRequest(method, path, json=json, params=params))

    def iter_text(self, request: APIRequest) -> Iterator[str]:
        """Stream a text response (a CSV export) chunk by chunk instead of holding it in memory."""
        http_request = self._build(self._http, request)
        try:
            response = self._http.send(http_request, stream=True)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        try:
            if not response.is_success:
                response.read()
                _decode(response)
            yield from response.iter_text()
        finally:
            response.close()

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncRotor(_BaseClient):
    """Asynchronous client for the rotor-lite API: `Rotor`'s methods, awaited."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        workspace: str | None = None,
    ) -> None:
        super().__init__(api_key, base_url, workspace)
        self._http = httpx.AsyncClient(transport=transport, **_http_options(self.base_url, timeout))
        self.queues: Queues[Awaitable[Any]] = Queues(self.execute)
        self.jobs: Jobs[Awaitable[Any]] = Jobs(self.execute)
        self.status: Status[Awaitable[Any]] = Status(self.execute)
        self.usage: Usage[Awaitable[Any]] = Usage(self.execute)
        self.approvals: Approvals[Awaitable[Any]] = Approvals(self.execute)
        self.guardrails: Guardrails[Awaitable[Any]] = Guardrails(self.execute)
        self.schedules: Schedules[Awaitable[Any]] = Schedules(self.execute)
        self.webhooks: Webhooks[Awaitable[Any]] = Webhooks(self.execute)
        self.secrets: Secrets[Awaitable[Any]] = Secrets(self.execute)
        self.alerts: Alerts[Awaitable[Any]] = Alerts(self.execute)
        self.audit: Audit[Awaitable[Any]] = Audit(self.execute)
        self.functions: Functions[Awaitable[Any]] = Functions(self.execute)
        self.runs: Runs[Awaitable[Any]] = Runs(self.execute)
        self.signals: Signals[Awaitable[Any]] = Signals(self.execute)
        self.workflow: Workflow[Awaitable[Any]] = Workflow(self.execute)
        self.api_keys: ApiKeys[Awaitable[Any]] = ApiKeys(self.execute)
        self.workspaces: Workspaces[Awaitable[Any]] = Workspaces(self.execute)

    async def execute(self, request: APIRequest) -> Any:
        """Execute one API request and return its decoded JSON."""
        http_request = self._build(self._http, request)
        try:
            response = await self._http.send(http_request)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        return _decode(response, request.raw)

    async def send(self, name: str, data: Any = None, *, idempotency_key: str | None = None, ts: int | None = None) -> Any:
        """Send the event `name` with `data`: starts the functions it triggers, resumes runs waiting for it."""
        return await self.execute(event_request(name, data, idempotency_key=idempotency_key, ts=ts))

    async def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """Call any API route not covered by a resource."""
        return await self.execute(APIRequest(method, path, json=json, params=params))

    async def aclose(self) -> None:
        """Close the underlying connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
