"""The OpenAPI document served at `/doc`.

Handlers read their bodies themselves (to accept snake_case and camelCase alike), so
Litestar cannot see the request and response shapes. Each handler names them in its
`opt` (`body=`, `returns=`); this module adds them to Litestar's generated document.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar
from litestar.routes import HTTPRoute

from rotor_lite.schemas import ErrorOut

_REF = "#/components/schemas/{name}"


def build_document(app: Litestar) -> dict[str, Any]:
    """Litestar's document plus request bodies, response shapes and the error envelope."""
    document = app.openapi_schema.to_schema()
    described = list(_described_operations(app))
    types: list[Any] = [ErrorOut] + [t for _, _, _, body, returns in described for t in (body, returns) if t]
    refs, components = msgspec.json.schema_components(types, ref_template=_REF)
    document.setdefault("components", {}).setdefault("schemas", {}).update(components)
    error_ref = refs[0]
    for path, method, status, body, returns in described:
        operation = document["paths"].get(path, {}).get(method)
        if operation is None:
            continue
        if body is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": refs[types.index(body)]}}}
        responses = operation.setdefault("responses", {})
        responses.pop("400", None)  # bad input is a 422 in the error envelope, described by `default`
        if returns is not None:
            responses[str(status)] = {"description": "OK", "content": {"application/json": {"schema": refs[types.index(returns)]}}}
        else:
            _any_json(responses.get(str(status)))
        responses["default"] = {"description": "Error", "content": {"application/json": {"schema": error_ref}}}
    return document


def _any_json(response: dict[str, Any] | None) -> None:
    """A handler without `returns` still answers JSON: Litestar, seeing `Response[bytes]`, says "string"."""
    content = (response or {}).get("content", {}).get("application/json")
    if content is not None and content.get("schema") == {"type": "string"}:
        content["schema"] = {}


def _described_operations(app: Litestar) -> Any:
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                yield (
                    route.path_format, method.lower(), handler.status_code,
                    handler.opt.get("body"), handler.opt.get("returns"),
                )
