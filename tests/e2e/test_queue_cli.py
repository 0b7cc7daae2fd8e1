"""`rotor queues create|update` against a real server: every queue setting, and help that fits each command."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from rotor_lite.cli import main
from tests.helpers import ServerProcess


def rotor(server: ServerProcess, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, [*args, "--api-url", server.url, "--api-key", server.api_key, "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    queue: dict[str, Any] = json.loads(result.output)
    return queue


def settings(queue: dict[str, Any]) -> tuple[Any, ...]:
    backoff = queue["defaultJobOptions"]["backoff"]
    return backoff["type"], backoff["delay"], queue["timeout_seconds"], queue["approval_required"]


def test_create_and_update_set_backoff_timeout_and_approval(server: ServerProcess) -> None:
    created = rotor(server, "queues", "create", "billing", "--backoff-type", "fixed", "--backoff-delay", "500",
                    "--timeout-seconds", "7", "--approval-required")
    assert settings(created) == ("fixed", 500, 7, True)

    assert settings(rotor(server, "queues", "update", "billing", "--backoff-delay", "900")) == ("fixed", 900, 7, True)
    assert settings(rotor(server, "queues", "update", "billing", "--backoff-type", "exponential")) == (
        "exponential", 900, 7, True)
    updated = rotor(server, "queues", "update", "billing", "--no-approval-required", "--timeout-seconds", "12")
    assert settings(updated) == ("exponential", 900, 12, False)
    with server.client() as http:
        assert settings(http.get("/v1/queues/billing").json()) == ("exponential", 900, 12, False)

    defaults = rotor(server, "queues", "create", "plain", "--backoff-delay", "250")
    assert settings(defaults) == ("exponential", 250, 30, False)


def test_update_help_shows_no_create_time_defaults() -> None:
    runner = CliRunner()
    create_help = runner.invoke(main, ["queues", "create", "--help"], terminal_width=200).output
    update_help = runner.invoke(main, ["queues", "update", "--help"], terminal_width=200).output

    for option in ("--concurrency", "--retry-attempts", "--backoff-type", "--backoff-delay", "--timeout-seconds",
                   "--approval-required"):
        assert option in create_help and option in update_help
    assert "(default 1)" in create_help and "(default 2000)" in create_help
    assert "default" not in update_help
    assert "left as they are" in update_help


def test_fairness_and_rate_limits_are_set_shown_and_removed(server: ServerProcess) -> None:
    created = rotor(server, "queues", "create", "tenants", "--fairness-key", "payload.tenantId", "--rate-limit", "10/1s")
    assert (created["fairness"], created["rateLimit"]) == (
        {"key": "payload.tenantId"}, {"key": "payload.tenantId", "max": 10, "per": "1s"})
    shown = CliRunner().invoke(main, ["queues", "get", "tenants", "--api-url", server.url, "--api-key", server.api_key],
                               terminal_width=200).output
    assert "payload.tenantId" in shown and "10 per 1s by payload.tenantId" in shown
    faster = rotor(server, "queues", "update", "tenants", "--rate-limit", "50/2s")  # keyed by the queue's fairness key
    assert faster["rateLimit"] == {"key": "payload.tenantId", "max": 50, "per": "2s"}
    removed = rotor(server, "queues", "update", "tenants", "--no-fairness", "--no-rate-limit")
    assert (removed["fairness"], removed["rateLimit"]) == (None, None)
    keyless = CliRunner().invoke(main, ["queues", "create", "x", "--rate-limit", "5/1s", "--api-url", server.url,
                                        "--api-key", server.api_key])
    assert keyless.exit_code != 0 and "needs a key" in keyless.output
