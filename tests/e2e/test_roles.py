"""Every route of the OpenAPI document, called with every role and kind of key: a 403 exactly where the
route's declared access (`x-rotor-role`, `x-rotor-keys`) says so, and no route without a declaration."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from rotor_lite.models import Role
from tests.helpers import ServerProcess, api_routes, offline

ROLES = [role.value for role in Role]
WRITES = ("POST", "PUT", "PATCH", "DELETE")
# (label, key type, role, whether a team key names its workspace)
CALLERS = (
    [(f"workspace-{role}", "workspace", role, False) for role in ROLES]
    + [(f"team-{role}", "team", role, True) for role in ROLES]
    + [(f"team-{role}-unnamed", "team", role, False) for role in ROLES]
    + [("queue-developer", "queue", "developer", False), ("queue-admin", "queue", "admin", False)]
)
Operation = tuple[str, str, dict[str, Any]]  # method, path template, operation object


@pytest.fixture(scope="module")
def walked(shared_server: ServerProcess) -> tuple[ServerProcess, list[Operation], dict[str, str]]:
    """The server's documented operations and a key of every kind and role (queue keys on queue `mine`)."""
    server = shared_server
    with server.client() as http:
        document = http.get("/doc").json()
        assert http.post("/v1/queues", json={"name": "mine"}).status_code == 201
        keys = {f"team-{role}": http.post("/v1/api-keys", json={"label": role, "type": "team", "role": role}).json()["key"]
                for role in ROLES}
    for role in ROLES:
        keys[f"workspace-{role}"] = offline(server.data_dir, "keys", "create", "--workspace", "default", "--role", role)["key"]
    for role in ("developer", "admin"):
        keys[f"queue-{role}"] = offline(server.data_dir, "keys", "create", "--workspace", "default", "--queue", "mine",
                                        "--role", role)["key"]
    operations = [(method.upper(), path, op) for path, ops in document["paths"].items() for method, op in ops.items()]
    return server, operations, keys


def test_every_route_of_the_app_is_documented_with_its_access(walked: tuple[ServerProcess, list[Operation], dict[str, str]]) -> None:
    _, operations, _ = walked
    documented = {(method, path) for method, path, _ in operations}
    # Litestar's own pages, and the dashboard (its pages take their access from the API routes they mirror)
    served = {route for route in api_routes("/") if not route[1].startswith(("/schema", "/dashboard"))}
    assert served - {("GET", "/doc")} == documented
    undeclared = [(method, path) for method, path, op in operations if "x-rotor-role" not in op or "x-rotor-keys" not in op]
    assert not undeclared, f"routes without a declared role: {undeclared}"
    for _, _, op in operations:
        assert op["x-rotor-role"] in {*ROLES, "public", "operator"}
        assert ("Least role" in op["description"]) == (op["x-rotor-role"] in ROLES)


@pytest.mark.parametrize(("caller", "key_type", "role", "named"), CALLERS, ids=[c[0] for c in CALLERS])
def test_each_route_refuses_exactly_the_keys_its_declaration_refuses(
    walked: tuple[ServerProcess, list[Operation], dict[str, str]], caller: str, key_type: str, role: str, named: bool
) -> None:
    server, operations, keys = walked
    key = keys[caller.removesuffix("-unnamed")]
    headers = {"X-Rotor-Workspace": "default"} if named else {}
    wrong = []
    with server.client(key) as http:
        for method, template, op in operations:
            path = re.sub(r"\{\w+\}", "x", template.replace("{name}", "mine"))  # the queue key's own queue
            answer = http.request(method, path, json={} if method in WRITES else None, headers=headers)
            expected, got = _expected(op, key_type, role, named), _outcome(answer)
            if got != expected:
                wrong.append(f"{method} {template}: {answer.status_code} {answer.text[:120]} (expected {expected})")
    assert not wrong, "\n".join(wrong)


def _expected(op: dict[str, Any], key_type: str, role: str, named: bool) -> str:
    """"forbidden" when the declaration refuses the key; "name the workspace" for a team key that names
    none where it must; else "allowed" (whatever the route then says of the request)."""
    least = op["x-rotor-role"]
    if least == "public":
        return "allowed"
    if least == "operator":  # the operator token's routes: no API key at all
        return "forbidden"
    if key_type not in op["x-rotor-keys"] or not Role(role).covers(Role(least)):
        return "forbidden"
    if key_type == "team" and not named and op["x-rotor-team-workspace"] == "required":
        return "name the workspace"
    return "allowed"


def _outcome(answer: httpx.Response) -> str:
    if answer.status_code == 403:
        return "forbidden"
    if answer.status_code == 422 and answer.json()["error"]["details"].get("field") == "X-Rotor-Workspace":
        return "name the workspace"
    return f"refused key {answer.text}" if answer.status_code == 401 else "allowed"


def test_without_a_key_every_route_but_the_public_ones_is_a_401(
    walked: tuple[ServerProcess, list[Operation], dict[str, str]]
) -> None:
    server, operations, _ = walked
    for method, template, op in operations:
        path = re.sub(r"\{\w+\}", "x", template)
        status = httpx.request(method, server.url + path, json={} if method in WRITES else None).status_code
        assert (status == 401) == (op["x-rotor-role"] != "public"), (method, template, status)
