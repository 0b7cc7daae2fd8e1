"""A tool: a name, a description that says what it changes, an argument Struct whose JSON schema is the
tool's input schema, and what it does with an API client holding the caller's key.

Tools reach rotor-lite only through the HTTP API (the SDK's `AsyncRotor`), so the key's role and
workspace apply exactly as on the routes. A call never raises: a refusal comes back as a tool
error carrying the API's envelope `{"error": {"code", "message", "details"}}`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import msgspec

from rotor_lite import errors
from rotor_lite.schemas import convert_request, fold_keys
from rotor_lite.sdk import AsyncRotor
from rotor_lite.sdk import errors as sdk_errors
from rotor_lite.sdk._request import path as api_path

__all__ = ["Call", "Param", "Tool", "ToolResult", "arguments", "param", "rest"]

log = logging.getLogger("rotor_lite.mcp")
A = TypeVar("A")
Param = tuple[Any, Any]  # (annotated type, default) of one argument
Run = Callable[[AsyncRotor, "Call[Any]"], Awaitable[Any]]
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def param(kind: Any, description: str, default: Any = msgspec.NODEFAULT) -> Param:
    """One argument: its type, what it means (shown to the model), and its default (none: required)."""
    return Annotated[kind, msgspec.Meta(description=description)], default


CONFIRM = param(bool, "Must be true: this tool destroys or replays data. Ask the user first.", False)
LIMIT = param(int | None, "Page size (1 to 500, default 50).", None)
CURSOR = param(str | None, "The `nextCursor` of the previous page.", None)


def arguments(tool: str, base: type[msgspec.Struct] | None = None, /, **fields: Param) -> type[msgspec.Struct]:
    """The argument Struct of `tool`: the fields of `base` (an API request Struct) plus `fields`."""
    spec = [(field, kind, default) for field, (kind, default) in fields.items()]
    return msgspec.defstruct(
        tool, spec, bases=(base,) if base is not None else None, kw_only=True, forbid_unknown_fields=True,
    )


@dataclass(frozen=True, slots=True)
class Call(Generic[A]):
    """One tool call: its validated arguments, and the arguments as given (snake_case keys), which a
    request body carries as they are so that "not given" stays different from "given the default"."""

    args: A
    given: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolResult:
    value: dict[str, Any]
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Tool:
    """An MCP tool; `destructive` ones refuse to run without `confirm: true`."""

    name: str
    description: str
    arguments: type[msgspec.Struct]
    run: Run
    destructive: bool = False
    read_only: bool = False

    def input_schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments: an object schema, nested Structs under `$defs`."""
        (_,), components = msgspec.json.schema_components([self.arguments], ref_template="#/$defs/{name}")
        schema = dict(components.pop(self.arguments.__name__))
        schema.pop("title", None)
        schema.pop("description", None)
        if components:
            schema["$defs"] = components
        return schema

    async def call(self, client: AsyncRotor, arguments: Mapping[str, Any] | None) -> ToolResult:
        """Run the tool; an error of the API, of the arguments or of the connection is a tool error."""
        try:
            value = await self.run(client, self._parse(dict(arguments or {})))
        except errors.RotorError as exc:  # bad arguments, or a tool's own refusal (made before any change)
            return _error(exc.code, exc.message, exc.details)
        except sdk_errors.RotorAPIError as exc:
            return _error(exc.code, exc.message, exc.details)
        except sdk_errors.RotorError as exc:
            return _error("UNAVAILABLE", str(exc), {})
        except Exception:
            log.exception("MCP tool failed", extra={"tool": self.name})
            return _error("INTERNAL", f"{self.name} failed unexpectedly; the server's log has the details", {})
        return ToolResult(value if isinstance(value, dict) else {"result": value})

    def _parse(self, raw: dict[str, Any]) -> Call[Any]:
        args = convert_request(raw, self.arguments)
        if self.destructive and getattr(args, "confirm", False) is not True:
            raise errors.ValidationError(
                f"{self.name} is destructive: call it again with confirm: true once the user has agreed",
                field="confirm",
            )
        return Call(args, fold_keys(raw))


def _error(code: str, message: str, details: dict[str, Any]) -> ToolResult:
    return ToolResult({"error": {"code": code, "message": message, "details": details}}, is_error=True)


def rest(
    name: str, description: str, method: str, template: str, *, body: type[msgspec.Struct] | None = None,
    query: Mapping[str, Param] | None = None, ids: Mapping[str, Param] | None = None, wrap: str | None = None,
    done: str | None = None, destructive: bool = False,
) -> Tool:
    """A tool that is one API call: `{placeholders}` of `template` and the `query` parameters are
    arguments; so are the fields of `body` (the route's request Struct), sent as given.

    `wrap` names a list response's items (`{queues: [...]}` for `{data: [...]}`); `done` names what a response without
    a body means (`{"deleted": true, "name": …}`).
    """
    query = dict(query or {})
    placeholders = _PLACEHOLDER.findall(template)
    path_params = {key: (ids or {}).get(key) or _PATH_PARAMS[key] for key in placeholders}
    extra = path_params | query | ({"confirm": CONFIRM} if destructive else {})
    body_fields = frozenset(body.__struct_fields__) if body is not None else frozenset()

    async def run(client: AsyncRotor, call: Call[Any]) -> Any:
        segments = [getattr(call.args, key) for key in placeholders]
        path = api_path(_PLACEHOLDER.sub("{}", template), *segments)
        params = {key: getattr(call.args, key) for key in query}
        json = {k: v for k, v in call.given.items() if k in body_fields} if body is not None else None
        response = await client.request(method, path, json=json, params=params or None)
        if response is None and done is not None:
            return {done: True} | {key: getattr(call.args, key) for key in placeholders}
        if wrap is not None and isinstance(response, list):
            return {wrap: response}
        if wrap is not None and isinstance(response, dict) and "data" in response:
            return {wrap: response.pop("data")} | response
        return response

    return Tool(
        name, description, arguments(name, body, **extra), run, destructive=destructive,
        read_only=method == "GET",
    )


_PATH_PARAMS: dict[str, Param] = {
    "name": param(str, "The queue's name."),
    "queue": param(str, "The queue's name."),
    "job_id": param(str, "The job's id (job_…, or the jobId it was enqueued with)."),
}
