"""Small helpers every controller uses: the core, JSON responses, body decoding, paging."""

from __future__ import annotations

from typing import Any, TypeVar, cast

import msgspec
from litestar import Request, Response
from litestar.types import Message, Receive, Scope, Send

from rotor_lite.errors import ValidationError
from rotor_lite.schemas import decode_request
from rotor_lite.services.core import Core

T = TypeVar("T")
MAX_PAGE = 500


def core_of(request: Request[Any, Any, Any]) -> Core:
    core: Core = request.app.state.core
    return core


def json_response(content: Any, status: int = 200) -> Response[bytes]:
    return Response(content=msgspec.json.encode(content), status_code=status, media_type="application/json")


class JsonBody:
    """A finished JSON response as a plain ASGI app, for the hot routes (enqueue).

    Litestar turns a `Response` into an ASGI response per request (headers, cookies,
    background tasks); these bytes need none of that.
    """

    __slots__ = ("_start", "_body")

    def __init__(self, content: Any, status: int = 200) -> None:
        self._body = msgspec.json.encode(content)
        self._start = {
            "type": "http.response.start", "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(self._body))],
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(cast(Message, self._start))
        await send({"type": "http.response.body", "body": self._body, "more_body": False})


async def read_body(request: Request[Any, Any, Any], struct: type[T], nested: tuple[str, ...] = ()) -> T:
    return decode_request(await request.body(), struct, nested)


def header(request: Request[Any, Any, Any], name: bytes) -> str | None:
    """One request header (`name` in lower case), read from the raw ASGI list: building
    `request.headers` costs more than the hot routes need."""
    for key, value in request.scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def page_limit(limit: int | None) -> int:
    if limit is None:
        return 50
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    return limit
