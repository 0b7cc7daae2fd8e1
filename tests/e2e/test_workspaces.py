"""Workspaces and plans end to end: team keys create workspaces, each workspace's plan sets its quota (402),
rate limit (429) and retention, overridable per plan in the configuration; the API, the CLI and offline."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from rotor_lite.cli import main
from tests.helpers import ServerProcess, offline

PLANS_ENV = {
    "ROTOR_PLANS_FREE_JOBS_PER_MONTH": "3",
    "ROTOR_PLANS_FREE_REQUESTS_PER_MINUTE": "1000",
    "ROTOR_PLANS_PRO_REQUESTS_PER_MINUTE": "8",
    "ROTOR_LIMITS_RATE_LIMIT_PER_MINUTE": "10000",  # [limits] stays the self-hosted plan's figure
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = ServerProcess(data_dir=tmp_path_factory.mktemp("plans") / "data", env=PLANS_ENV).start()
    yield started
    started.kill()


@pytest.fixture(scope="module")
def team_key(server: ServerProcess) -> str:
    with server.client() as http:
        made = http.post("/v1/api-keys", json={"label": "ops", "type": "team", "role": "admin"})
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


def create(server: ServerProcess, team_key: str, plan: str) -> dict[str, Any]:
    """A new workspace on `plan`, made by the team key: its JSON with the first admin key."""
    with server.client(team_key) as http:
        made = http.post("/v1/workspaces", json={"name": f"{plan}-{uuid.uuid4().hex[:8]}", "plan": plan})
    assert made.status_code == 201, made.text
    workspace: dict[str, Any] = made.json()
    return workspace


def cli(server: ServerProcess, key: str, *args: str, config_dir: Path | None = None) -> Result:
    env = {"ROTOR_CONFIG_DIR": str(config_dir or Path("/nonexistent")), "ROTOR_WORKSPACE": ""}
    return CliRunner().invoke(main, [*args, "--api-key", key, "--api-url", server.url], env=env)


def test_a_team_key_creates_workspaces_and_reaches_them(server: ServerProcess, team_key: str) -> None:
    made = create(server, team_key, "free")
    assert made["plan"] == "free" and made["id"].startswith("ws_")
    assert made["limits"] == {"jobsPerMonth": 3, "requestsPerMinute": 1000, "retentionDays": 7}
    first = made["apiKey"]
    assert first["key"].startswith("rt_ws_") and first["role"] == "admin" and first["workspaces"] == [made["id"]]
    with server.client(team_key) as http:
        reached = {w["name"]: w for w in http.get("/v1/workspaces").json()["data"]}
        assert set(reached) >= {"default", made["name"]}
        assert reached["default"]["plan"] == "self-hosted"
        assert reached["default"]["limits"] == {"jobsPerMonth": None, "requestsPerMinute": 10000, "retentionDays": 7}
        assert http.get(f"/v1/workspaces/{made['name']}").json() == {k: v for k, v in made.items() if k != "apiKey"}
        assert http.post("/v1/queues", json={"name": "q"}, headers={"X-Rotor-Workspace": made["name"]}).status_code == 201
        taken = http.post("/v1/workspaces", json={"name": made["name"]})
        assert taken.status_code == 409
        assert http.post("/v1/workspaces", json={"name": "x", "plan": "gold"}).status_code == 422
    with server.client(first["key"]) as http:  # the new workspace's own admin key
        assert [q["name"] for q in http.get("/v1/queues").json()["data"]] == ["q"]
        assert [w["id"] for w in http.get("/v1/workspaces").json()["data"]] == [made["id"]]
        refused = http.post("/v1/workspaces", json={"name": "by-a-workspace-key"})
        assert refused.status_code == 403 and "team key" in refused.json()["error"]["message"]
        assert http.get("/v1/workspaces/default").status_code == 404  # not one it reaches
    with server.client() as http:  # the default workspace's admin: the team key now reaches a workspace it does not
        team_id = next(k["id"] for k in http.get("/v1/api-keys").json()["data"] if k["type"] == "team")
        assert http.post(f"/v1/api-keys/{team_id}/rotate").status_code == 403
        created_events = http.get("/v1/audit", params={"event_type": "workspace.created"}).json()["data"]
    assert made["id"] in {e["resource_id"] for e in created_events}
    assert first["key"] not in json.dumps(created_events)


def test_each_workspace_has_its_plans_monthly_quota(server: ServerProcess, team_key: str) -> None:
    free = create(server, team_key, "free")
    with server.client(free["apiKey"]["key"]) as http:
        assert http.post("/v1/queues", json={"name": "q"}).status_code == 201
        assert http.post("/v1/queues/q/jobs/batch", json={"jobs": [{}, {}]}).status_code == 201
        batch = http.post("/v1/queues/q/jobs/batch", json={"jobs": [{}, {}]})  # one left: all or nothing
        assert batch.status_code == 402 and batch.json()["error"]["details"] == {"used": 2, "limit": 3, "plan": "free"}
        assert http.post("/v1/queues/q/jobs", json={}).status_code == 201
        over = http.post("/v1/queues/q/jobs", json={})
        assert (over.status_code, over.json()["error"]["code"]) == (402, "QUOTA_EXCEEDED")
        assert over.json()["error"]["details"] == {"used": 3, "limit": 3, "plan": "free"}
        assert http.get("/v1/status").json()["quota"] | {"resetAt": None} == \
               {"used": 3, "limit": 3, "plan": "free", "resetAt": None}
    status = cli(server, free["apiKey"]["key"], "status")
    assert status.exit_code == 0, status.output
    assert "Plan: free" in status.output and "Quota: 3 / 3 jobs used this period" in status.output
    with server.client() as http:  # the self-hosted default workspace: unlimited
        assert http.post("/v1/queues", json={"name": "unlimited"}).status_code == 201
        assert http.post("/v1/queues/unlimited/jobs/batch", json={"jobs": [{}] * 5}).status_code == 201
        assert http.get("/v1/status").json()["quota"]["limit"] is None


def test_each_workspace_has_its_plans_rate_limit(server: ServerProcess, team_key: str) -> None:
    pro, free = create(server, team_key, "pro"), create(server, team_key, "free")
    with server.client(pro["apiKey"]["key"]) as busy, server.client(free["apiKey"]["key"]) as calm:
        answers = [busy.get("/v1/queues") for _ in range(17)]  # 8 a minute: a window boundary splits it once at most
        limited = next(a for a in answers if a.status_code == 429)
        assert calm.get("/v1/queues").status_code == 200  # another workspace, another limit
    ok = answers[0]
    assert ok.status_code == 200 and ok.headers["X-RateLimit-Limit"] == "8"
    assert int(ok.headers["X-RateLimit-Remaining"]) < 8 and int(ok.headers["X-RateLimit-Reset"]) > 0
    assert limited.json()["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert (limited.headers["X-RateLimit-Limit"], limited.headers["X-RateLimit-Remaining"]) == ("8", "0")


def test_workspaces_and_keys_from_the_command_line(server: ServerProcess, team_key: str, tmp_path: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    made = cli(server, team_key, "workspaces", "create", name, "--plan", "pro", "--json")
    assert made.exit_code == 0, made.output
    workspace = json.loads(made.output)
    assert workspace["plan"] == "pro" and workspace["apiKey"]["key"].startswith("rt_ws_")
    listed = cli(server, team_key, "workspaces", "list")
    assert listed.exit_code == 0 and name in listed.output and "100,000" in listed.output
    got = cli(server, team_key, "workspaces", "get", name)
    assert got.exit_code == 0 and "Requests per minute:" in got.output and "8" in got.output
    offline_name = f"offline-{uuid.uuid4().hex[:8]}"
    local = offline(server.data_dir, "workspaces", "create", offline_name, "--plan", "team")
    assert set(local) == {"id", "name", "key"}
    with server.client(local["key"]) as http:
        assert http.get(f"/v1/workspaces/{local['id']}").json()["limits"]["retentionDays"] == 90

    admin = workspace["apiKey"]["key"]
    created = cli(server, admin, "api-keys", "create", "--label", "claude-code", "--role", "viewer", "--json")
    assert created.exit_code == 0, created.output
    key = json.loads(created.output)
    assert key["role"] == "viewer" and key["key"].startswith("rt_ws_")
    shown = cli(server, admin, "api-keys", "create", "--label", "outreach", "--queue", "nope")
    assert shown.exit_code == 1 and "NOT_FOUND" in shown.output
    table = cli(server, admin, "api-keys", "list")
    assert table.exit_code == 0 and "claude-code" in table.output and key["prefix"] in table.output
    assert key["key"][10:] not in table.output
    assert "viewer" in cli(server, admin, "api-keys", "get", key["id"]).output
    rotated = cli(server, admin, "api-keys", "rotate", key["id"], "--grace-seconds", "0", "--json")
    assert rotated.exit_code == 0, rotated.output
    new = json.loads(rotated.output)
    revoked = cli(server, admin, "api-keys", "revoke", new["id"], "--force")
    assert revoked.exit_code == 0 and f"Revoked API key {new['id']}" in revoked.output
    for old in (key["key"], new["key"]):
        with server.client(old) as http:
            assert http.get("/v1/queues").status_code == 401
    team_cli = cli(server, team_key, "queues", "list", "--workspace", name)
    assert team_cli.exit_code == 0, team_cli.output
    unnamed = cli(server, team_key, "queues", "list")
    assert unnamed.exit_code == 1 and "X-Rotor-Workspace" in unnamed.output


def test_workspaces_help_says_when_create_works_offline(tmp_path: Path) -> None:
    shown = CliRunner().invoke(main, ["workspaces", "create", "--help"])
    assert shown.exit_code == 0 and "--data-dir" in shown.output and "team" in shown.output
    keyless = CliRunner().invoke(main, ["workspaces", "create", "acme"],
                                 env={"ROTOR_CONFIG_DIR": str(tmp_path), "ROTOR_API_KEY": ""})
    assert keyless.exit_code == 1 and "--data-dir" in keyless.output


def test_the_plan_figures_come_from_the_configuration(make_server: Any) -> None:
    server = make_server(ROTOR_PLANS_SELF_HOSTED_RETENTION_DAYS="3", ROTOR_LIMITS_MONTHLY_JOB_QUOTA="2")
    with server.client() as http:
        default = http.get("/v1/workspaces/default").json()
        assert default["limits"] == {"jobsPerMonth": 2, "requestsPerMinute": None, "retentionDays": 3}
        assert http.post("/v1/queues", json={"name": "q"}).status_code == 201
        assert http.post("/v1/queues/q/jobs/batch", json={"jobs": [{}, {}, {}]}).json()["error"]["details"] == \
               {"used": 0, "limit": 2, "plan": "self-hosted"}
