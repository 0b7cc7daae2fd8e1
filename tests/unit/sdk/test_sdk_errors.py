"""Non-2xx responses become typed errors; transport failures become plain RotorError."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from rotor_lite.sdk import (
    AsyncRotor,
    Rotor,
    RotorAPIError,
    RotorConflict,
    RotorError,
    RotorIdempotencyConflict,
    RotorNotFound,
    RotorQuotaExceeded,
    RotorRateLimited,
    RotorUnauthorized,
    RotorValidationError,
)
from rotor_lite.sdk.errors import parse_retry_after


def envelope(code: str, message: str = "it went wrong", details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def client_answering(response: httpx.Response) -> Rotor:
    return Rotor(api_key="rt_ws_test", transport=httpx.MockTransport(lambda request: response))


@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [
        (401, "UNAUTHORIZED", RotorUnauthorized),
        (404, "NOT_FOUND", RotorNotFound),
        (409, "CONFLICT", RotorConflict),
        (409, "IDEMPOTENCY_CONFLICT", RotorIdempotencyConflict),
        (402, "QUOTA_EXCEEDED", RotorQuotaExceeded),
        (422, "VALIDATION_ERROR", RotorValidationError),
        (429, "RATE_LIMITED", RotorRateLimited),
        (403, "FORBIDDEN", RotorAPIError),
        (410, "GONE", RotorAPIError),
        (413, "PAYLOAD_TOO_LARGE", RotorAPIError),
        (500, "INTERNAL", RotorAPIError),
    ],
)
def test_envelope_codes_map_to_error_classes(status: int, code: str, error_class: type[RotorAPIError]) -> None:
    details = {"field": "name"}
    with client_answering(httpx.Response(status, json=envelope(code, "bad thing", details))) as client:
        with pytest.raises(error_class) as caught:
            client.queues.get("outreach")
    error = caught.value
    assert type(error) is error_class
    assert (error.status, error.code, error.message, error.details) == (status, code, "bad thing", details)
    assert error.retry_after is None
    assert code in str(error) and "bad thing" in str(error)


def test_quota_details_are_exposed() -> None:
    details = {"used": 100, "limit": 100, "plan": "free"}
    with client_answering(httpx.Response(402, json=envelope("QUOTA_EXCEEDED", "quota", details))) as client:
        with pytest.raises(RotorQuotaExceeded) as caught:
            client.jobs.enqueue("q", {})
    assert caught.value.details == details


def test_rate_limited_carries_retry_after() -> None:
    response = httpx.Response(429, json=envelope("RATE_LIMITED", "slow down"), headers={"Retry-After": "17"})
    with client_answering(response) as client:
        with pytest.raises(RotorRateLimited) as caught:
            client.jobs.list("q")
    assert caught.value.retry_after == 17.0


def test_retry_after_accepts_an_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 + 60) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_missing_details_are_an_empty_dict() -> None:
    with client_answering(httpx.Response(404, json=envelope("NOT_FOUND", "no such queue"))) as client:
        with pytest.raises(RotorNotFound) as caught:
            client.queues.get("nope")
    assert caught.value.details == {}


@pytest.mark.parametrize(
    ("status", "content", "code"),
    [
        (502, b"<html>Bad gateway</html>", "INTERNAL"),
        (500, b"", "INTERNAL"),
        (404, b"not here", "HTTP_404"),
        (418, b'{"message": "teapot"}', "HTTP_418"),
        (400, b'["not", "an", "envelope"]', "HTTP_400"),
    ],
)
def test_non_envelope_bodies_still_raise(status: int, content: bytes, code: str) -> None:
    with client_answering(httpx.Response(status, content=content)) as client:
        with pytest.raises(RotorAPIError) as caught:
            client.status.get()
    assert type(caught.value) is RotorAPIError
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.message


def test_connection_errors_raise_plain_rotor_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with Rotor(api_key="k", base_url="http://127.0.0.1:1", transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(RotorError) as caught:
            client.status.get()
    assert not isinstance(caught.value, RotorAPIError)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert "http://127.0.0.1:1" in str(caught.value)


async def test_async_timeouts_raise_plain_rotor_error() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with AsyncRotor(api_key="k", transport=httpx.MockTransport(hang)) as client:
        with pytest.raises(RotorError) as caught:
            await client.jobs.get("q", "job_1")
    assert not isinstance(caught.value, RotorAPIError)
    assert isinstance(caught.value.__cause__, httpx.TimeoutException)


async def test_async_errors_are_mapped_too() -> None:
    response = httpx.Response(409, json=envelope("IDEMPOTENCY_CONFLICT", "job exists", {"jobId": "j"}))
    async with AsyncRotor(api_key="k", transport=httpx.MockTransport(lambda request: response)) as client:
        with pytest.raises(RotorIdempotencyConflict) as caught:
            await client.jobs.enqueue("q", {}, job_id="j", strict=True)
    assert caught.value.details == {"jobId": "j"}


def test_invalid_json_on_success_is_a_rotor_error() -> None:
    with client_answering(httpx.Response(200, content=b"{not json")) as client:
        with pytest.raises(RotorError, match="invalid JSON"):
            client.status.get()


def test_real_connection_refused_is_a_rotor_error() -> None:
    with Rotor(api_key="k", base_url="http://127.0.0.1:9", timeout=2.0) as client:
        with pytest.raises(RotorError) as caught:
            client.status.get()
    assert isinstance(caught.value.__cause__, httpx.TransportError)
