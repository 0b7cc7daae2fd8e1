"""The OpenAPI document served at `/doc`.

Handlers read their bodies themselves (to accept snake_case and camelCase alike), so
Litestar cannot see the request and response shapes. Each handler names them in its
`opt` (`body=`, `returns=`); this module adds them to Litestar's generated document, with
who may call each route (its declared `access`): `x-rotor-role` (the least role,
"public", or "operator" for the operator token's routes), `x-rotor-keys` (the kinds of key that may), `x-rotor-team-workspace` (whether a
team key must name its workspace) and a line of its description.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar

from rotor_lite.api.auth import WORKSPACE_HEADER, Access, access_of, app_routes
from rotor_lite.schemas import ErrorOut

_REF = "#/components/schemas/{name}"


def build_document(app: Litestar) -> dict[str, Any]:
    """Litestar's document plus request bodies, response shapes and the error envelope."""
    document = app.openapi_schema.to_schema()
    described = list(_described_operations(app))
    types: list[Any] = [ErrorOut] + [t for _, _, _, body, returns, _ in described for t in (body, returns) if t]
    refs, components = msgspec.json.schema_components(types, ref_template=_REF)
    document.setdefault("components", {}).setdefault("schemas", {}).update(components)
    error_ref = refs[0]
    for path, method, status, body, returns, access in described:
        operation = document["paths"].get(path, {}).get(method)
        if operation is None:
            continue
        _describe_access(operation, access)
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


def _describe_access(operation: dict[str, Any], access: Access) -> None:
    operation["x-rotor-role"] = "operator" if access.operator else access.role.value if access.role else "public"
    operation["x-rotor-keys"] = [kind.value for kind in access.key_types]
    if access.operator:
        who = "Operator token only (`[mcp] admin_token`): every API key is refused."
    elif access.role is None:
        who = "Public: no API key needed."
    else:
        operation["x-rotor-team-workspace"] = "optional" if access.any_workspace else "required"
        who = f"Least role: `{access.role.value}`. Keys: {', '.join(operation['x-rotor-keys'])}"
        who += " (a queue key for its own queue only)." if access.queue_key else "."
        if not access.any_workspace:
            who += f" A team key names the workspace in `{WORKSPACE_HEADER}`."
    operation["description"] = f"{operation.get('description', '').strip()}\n\n{who}".strip()


def _any_json(response: dict[str, Any] | None) -> None:
    """A handler without `returns` still answers JSON: Litestar, seeing `Response[bytes]`, says "string"."""
    content = (response or {}).get("content", {}).get("application/json")
    if content is not None and content.get("schema") == {"type": "string"}:
        content["schema"] = {}


def _described_operations(app: Litestar) -> Any:
    for route, handler in app_routes(app):
        for method in handler.http_methods:
            yield (
                route.path_format, method.lower(), handler.status_code,
                handler.opt.get("body"), handler.opt.get("returns"), access_of(handler),
            )
