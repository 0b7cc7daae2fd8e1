"""Schemathesis against `GET /doc`: no 500, and no response outside the shapes the document gives.

Every operation in the OpenAPI document gets generated requests (valid and invalid bodies, query
strings and path parameters) with an admin key. Each response must not be a 5xx, must use a
status code the operation documents (`default` is the error envelope), must be JSON where JSON is
documented, and must match the documented schema. (An operation whose handler names no response
Struct in its `opt["returns"]` is documented as "any JSON", so only its status and type are checked.)

Examples per operation: 50 by default so the suite stays fast; set ROTOR_SCHEMATHESIS_EXAMPLES
(e.g. 1000) for the full run:  ROTOR_SCHEMATHESIS_EXAMPLES=1000 python -m pytest tests/reliability/test_schemathesis.py
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.generation.case import Case

from tests.helpers import ServerProcess

EXAMPLES = int(os.environ.get("ROTOR_SCHEMATHESIS_EXAMPLES", "50"))
# Every URL field of a generated body (callback_url, webhook url, …) is pointed here, so the server's
# deliveries stay on loopback; nothing listens on the discard port, so they fail fast.
SINK = "http://127.0.0.1:9/sink"
CHECKS = [
    checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(data_dir=tmp_path_factory.mktemp("schemathesis") / "data").start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def api_schema(live_server: ServerProcess) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_url(f"{live_server.url}/doc")


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@pytest.mark.timeout(600)
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_response_is_documented(case: Case, live_server: ServerProcess) -> None:
    case.body = _loopback_only(case.body)
    case.call_and_validate(base_url=live_server.url, headers={"Authorization": f"Bearer {live_server.api_key}"},
                           checks=CHECKS, timeout=30)


def _loopback_only(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: SINK if "url" in str(k).lower() and isinstance(v, str) else _loopback_only(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_loopback_only(v) for v in value]
    return value
