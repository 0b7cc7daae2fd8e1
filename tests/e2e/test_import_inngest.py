"""`rotor import inngest --apply --yes` against a real server creates exactly what the import prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from rotor_lite.cli import main
from tests.helpers import ServerProcess

FIXTURES = Path(__file__).parents[1] / "fixtures"


def imported(server: ServerProcess, *args: str) -> tuple[list[dict[str, Any]], str]:
    """The lines `rotor import inngest inngest ARGS` prints, and the output of the same with --apply --yes."""
    runner = CliRunner()
    printed = runner.invoke(main, ["import", "inngest", "inngest", *args])
    assert printed.exit_code == 0, printed.output
    applied = runner.invoke(main, ["import", "inngest", "inngest", *args, "--apply", "--yes",
                                   "--api-url", server.url, "--api-key", server.api_key])
    assert applied.exit_code == 0, applied.output
    return [json.loads(line) for line in printed.stdout.splitlines()], applied.stdout


@pytest.fixture(autouse=True)
def in_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)


def test_apply_creates_the_printed_queues_and_schedules(server: ServerProcess) -> None:
    lines, output = imported(server, "--base-url", "http://127.0.0.1:3000/api/rotor")

    with server.client() as http:
        for line in (line for line in lines if line["type"] == "queue"):
            queue = http.get(f"/v1/queues/{line['config']['name']}").json()
            expected = {key: value for key, value in line["config"].items() if key != "notes"}
            assert {key: queue[key] for key in expected} == expected
        schedules = http.get("/v1/schedules", params={"limit": 100}).json()["data"]
    assert sorted((s["queue"], s["cron"], s["timezone"]) for s in schedules) == sorted(
        (line["config"]["queue"], line["config"]["cron"], line["config"]["timezone"])
        for line in lines if line["type"] == "schedule"
    )
    assert "Created queue welcome-email → http://127.0.0.1:3000/api/rotor/welcome-email" in output
    assert "Callback secret (shown once; set it as ROTOR_CALLBACK_SECRET)" in output

    _, again = imported(server, "--base-url", "http://127.0.0.1:3000/api/rotor")  # applying twice adds nothing
    assert "Queue welcome-email already exists; left unchanged." in again and "Created" not in again
    with server.client() as http:
        assert len(http.get("/v1/schedules", params={"limit": 100}).json()["data"]) == len(schedules)


def test_apply_with_a_serve_url_registers_the_printed_functions(server: ServerProcess) -> None:
    lines, output = imported(server, "--serve-url", "http://127.0.0.1:3000/api/rotor")

    with server.client() as http:
        registered = {fn["id"]: fn for fn in http.get("/v1/functions", params={"limit": 100}).json()["data"]}
    assert sorted(registered) == sorted(line["config"]["id"] for line in lines)
    for line in lines:
        function = registered[line["config"]["id"]]
        assert {key: function[key] for key in line["config"]} == line["config"]
    assert "Registered function welcome-email (user/created) → http://127.0.0.1:3000/api/rotor" in output
    assert "Registered function prepare-weekly-digest (0 12 * * 5 (Europe/Paris))" in output


def test_queues_without_a_base_url_wait_for_their_callback_url(server: ServerProcess) -> None:
    _, output = imported(server)

    assert "Created queue audit-log (no callback URL yet: rotor queues update audit-log --callback-url URL)" in output
    with server.client() as http:
        assert http.get("/v1/queues/audit-log").json()["callback_url"] is None
