"""Small helpers every controller uses: the core, JSON responses, body decoding, paging."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request, Response

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


async def read_body(request: Request[Any, Any, Any], struct: type[T], nested: tuple[str, ...] = ()) -> T:
    return decode_request(await request.body(), struct, nested)


def page_limit(limit: int | None) -> int:
    if limit is None:
        return 50
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    return limit
