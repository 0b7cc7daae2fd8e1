"""The `rotor` client commands against a real `rotor-lite serve` (one server for the module).

Each command runs in-process through click's CliRunner and talks HTTP to the server; what it did is
checked on the server itself. (How canned responses are printed is tested in tests/unit/cli.)
"""

from __future__ import annotations

import json
import stat
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from rotor_lite.cli import main
from rotor_lite.cli.client import status as status_module
from rotor_lite.sdk import verify_rotor_signature
from tests.helpers import Receiver, Reply, ServerProcess, free_port, offline, wait_until

Invoke = Callable[..., Result]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as rec:
        yield rec


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return tmp_path / "rotor-config"


@pytest.fixture
def rotor(shared_server: ServerProcess, config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """`rotor ARGS…` with the server's key and URL in the environment and a config directory of the test's own."""
    monkeypatch.setenv("ROTOR_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("ROTOR_API_KEY", shared_server.api_key)
    monkeypatch.setenv("ROTOR_API_URL", shared_server.url)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(main, list(args), input=input)

    return invoke


def new_name() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


def make_queue(http: httpx.Client, **fields: Any) -> str:
    name = new_name()
    created = http.post("/v1/queues", json={"name": name, **fields})
    assert created.status_code == 201, created.text
    return name


def enqueue(http: httpx.Client, queue: str, **fields: Any) -> str:
    created = http.post(f"/v1/queues/{queue}/jobs", json={"payload": {}, **fields})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def job_state(http: httpx.Client, queue: str, job_id: str) -> str:
    return str(http.get(f"/v1/queues/{queue}/jobs/{job_id}").json()["state"])


def lines(result: Result) -> list[list[str]]:
    return [line.split() for line in result.stdout.splitlines()]


# Key and URL: flags, then the environment, then the saved config -------------------------------


def test_flags_beat_the_environment_which_beats_the_saved_config(
    rotor: Invoke, shared_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    good = ("--api-key", shared_server.api_key, "--api-url", shared_server.url)
    monkeypatch.setenv("ROTOR_API_KEY", "rt_ws_wrong")
    monkeypatch.setenv("ROTOR_API_URL", dead)
    assert rotor("status", *good).exit_code == 0

    assert rotor("login", *good).exit_code == 0  # saves the good key and URL
    wrong_env = rotor("status")
    assert wrong_env.exit_code == 1 and dead in wrong_env.stderr
    monkeypatch.delenv("ROTOR_API_KEY")
    monkeypatch.delenv("ROTOR_API_URL")
    saved = rotor("status")
    assert saved.exit_code == 0 and "API: ok" in saved.stdout


def test_no_key_anywhere_is_a_clear_error(rotor: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROTOR_API_KEY")
    result = rotor("queues", "list")
    assert result.exit_code == 1
    assert "No API key" in result.stderr and "rotor login" in result.stderr


def test_api_errors_print_code_message_and_details(rotor: Invoke) -> None:
    missing = rotor("queues", "get", "no-such-queue")
    assert (missing.exit_code, missing.stdout) == (1, "")
    assert "Error [NOT_FOUND]: queue 'no-such-queue' not found" in missing.stderr
    invalid = rotor("queues", "create", "bad name")
    assert invalid.exit_code == 1 and "Error [VALIDATION_ERROR]" in invalid.stderr
    assert '"field": "name"' in invalid.stderr


def test_an_unreachable_server_exits_1(rotor: Invoke) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    result = rotor("queues", "list", "--api-url", dead)
    assert result.exit_code == 1 and f"Error: Could not reach the Rotor API at {dead}" in result.stderr


# Queues ---------------------------------------------------------------------------------------


def test_queues_create_with_every_option_prints_the_secret_once(rotor: Invoke, http: httpx.Client, receiver: Receiver) -> None:
    name = new_name()
    result = rotor(
        "queues", "create", name, "--concurrency", "10", "--retry-attempts", "5", "--callback-url", receiver.url("/cli"),
        "--callback-header", "X-Env=prod", "--callback-header", "Authorization=Bearer t=1", "--rotate-callback-secret",
        "--no-approval-required", "--timeout-seconds", "12",
    )
    assert result.exit_code == 0, result.output
    assert f"Created queue {name}." in result.stdout and "Copy this — it's shown once." in result.stdout
    [secret] = [words[3] for words in lines(result) if words[:3] == ["New", "callback", "secret:"]]
    queue = http.get(f"/v1/queues/{name}").json()
    assert (queue["concurrency"], queue["retry_attempts"], queue["callback_url"], queue["timeout_seconds"]) == (
        10, 5, receiver.url("/cli"), 12)
    assert queue["callback_headers"] == {"X-Env": "prod", "Authorization": "Bearer t=1"}
    assert queue["approval_required"] is False and "callback_secret" not in queue
    job_id = enqueue(http, name)
    wait_until(lambda: job_state(http, name, job_id) == "completed")
    [got] = [r for r in receiver.for_path("/cli") if r.job_id == job_id]
    assert got.headers["x-env"] == "prod"
    assert verify_rotor_signature(got.body, got.headers["x-rotor-signature"], secret, id=job_id,
                                  timestamp=got.headers["x-rotor-timestamp"])


def test_queues_create_sends_only_what_was_given(rotor: Invoke, http: httpx.Client) -> None:
    name = new_name()
    result = rotor("queues", "create", name)
    assert result.exit_code == 0, result.output
    assert "callback secret" not in result.stdout
    queue = http.get(f"/v1/queues/{name}").json()
    assert (queue["concurrency"], queue["retry_attempts"], queue["callback_url"], queue["timeout_seconds"]) == (1, 3, None, 30)

    as_json = rotor("queues", "create", new_name(), "--json")
    assert json.loads(as_json.stdout)["concurrency"] == 1
    quiet = rotor("queues", "create", new_name(), "--quiet")
    assert (quiet.exit_code, quiet.stdout) == (0, "")


def test_queues_create_rejects_a_malformed_header(rotor: Invoke, http: httpx.Client) -> None:
    name = new_name()
    result = rotor("queues", "create", name, "--callback-header", "no-equals-sign")
    assert result.exit_code == 2 and "NAME=VALUE" in result.stderr
    assert http.get(f"/v1/queues/{name}").status_code == 404


def test_queues_list_get_and_stats_show_the_server_s_queues(rotor: Invoke, http: httpx.Client) -> None:
    name = make_queue(http, concurrency=4)
    enqueue(http, name)  # no callback URL: it stays waiting
    listed = rotor("queues", "list")
    assert [name, "4", "active", "1", "/", "0", "/", "0"] in lines(listed)
    shown = rotor("queues", "get", name)
    assert ["waiting", "1"] in lines(shown) and ["Concurrency:", "4"] in lines(shown)
    assert "exponential, 2000 ms" in shown.stdout
    stats = rotor("queues", "stats", name)
    assert lines(stats)[0] == ["STATE", "JOBS"] and ["waiting", "1"] in lines(stats)
    assert json.loads(rotor("queues", "list", "--json").stdout) == http.get("/v1/queues").json()


def test_queues_list_in_an_empty_workspace(rotor: Invoke, shared_server: ServerProcess) -> None:
    key = offline(shared_server.data_dir, "workspaces", "create", new_name())["key"]
    assert "No queues yet" in rotor("queues", "list", "--api-key", key).stdout
    assert json.loads(rotor("queues", "list", "--api-key", key, "--json").stdout) == {"data": []}


def test_queues_update_pause_resume(rotor: Invoke, http: httpx.Client) -> None:
    name = make_queue(http)
    result = rotor("queues", "update", name, "--concurrency", "2", "--state", "paused", "--rotate-callback-secret",
                   "--approval-required")
    assert result.exit_code == 0, result.output
    assert f"Updated queue {name}." in result.stdout and "New callback secret: rcs_" in result.stdout
    queue = http.get(f"/v1/queues/{name}").json()
    assert (queue["concurrency"], queue["state"], queue["approval_required"]) == (2, "paused", True)
    assert f"Queue {name} is active." in rotor("queues", "resume", name).stdout
    assert f"Queue {name} is paused." in rotor("queues", "pause", name).stdout
    assert http.get(f"/v1/queues/{name}").json()["state"] == "paused"

    assert "Nothing to update" in rotor("queues", "update", name).stderr
    assert rotor("queues", "update", name, "--state", "stopped").exit_code == 2


def test_queues_delete_asks_first(rotor: Invoke, http: httpx.Client) -> None:
    name = make_queue(http)
    assert rotor("queues", "delete", name, input="n\n").exit_code == 1
    assert http.get(f"/v1/queues/{name}").status_code == 200
    accepted = rotor("queues", "delete", name, input="y\n")
    assert accepted.exit_code == 0 and f"Deleted queue {name}." in accepted.stdout
    assert http.get(f"/v1/queues/{name}").status_code == 404
    other = make_queue(http)
    forced = rotor("queues", "delete", other, "--force", "--json")
    assert json.loads(forced.stdout) == {"name": other, "deleted": True}
    assert http.get(f"/v1/queues/{other}").status_code == 404


def test_queues_drain_asks_first_then_cancels_waiting_jobs(rotor: Invoke, http: httpx.Client) -> None:
    name = make_queue(http)
    job_id = enqueue(http, name)
    assert rotor("queues", "drain", name, input="n\n").exit_code == 1
    assert job_state(http, name, job_id) == "waiting"
    result = rotor("queues", "drain", name, "--force")
    assert result.exit_code == 0 and f"Drained queue {name}." in result.stdout
    assert job_state(http, name, job_id) == "cancelled"


# Jobs -----------------------------------------------------------------------------------------


def test_jobs_enqueue_sends_every_option(rotor: Invoke, http: httpx.Client) -> None:
    name = make_queue(http)
    result = rotor(
        "jobs", "enqueue", name, "--payload", '{"contactId":"cid_123","campaignId":"camp_456"}', "--delay", "30s",
        "--tags", "campaign:q2-outbound, contact:cid_123,", "--concurrency-key", "contact:cid_123",
        "--job-id", "outreach:camp_456:cid_123", "--priority", "-2",
    )
    assert result.exit_code == 0, result.output
    assert f"Enqueued job outreach:camp_456:cid_123 in queue {name}." in result.stdout and "State: delayed" in result.stdout
    job = http.get(f"/v1/queues/{name}/jobs/outreach:camp_456:cid_123").json()
    assert job["payload"] == {"contactId": "cid_123", "campaignId": "camp_456"}
    assert (job["tags"], job["concurrencyKey"], job["priority"]) == (
        ["campaign:q2-outbound", "contact:cid_123"], "contact:cid_123", -2)
    assert _seconds_between(job["createdAt"], job["runAt"]) == 30

    at = rotor("jobs", "enqueue", name, "--payload", "[1, 2]", "--run-at", "2099-01-01T00:00:00Z", "--idempotency-key", "k1", "--json")
    assert (json.loads(at.stdout)["id"], json.loads(at.stdout)["runAt"]) == ("k1", "2099-01-01T00:00:00.000Z")
    seconds = json.loads(rotor("jobs", "enqueue", name, "--payload", "{}", "--delay", "45", "--json").stdout)
    assert _seconds_between(seconds["createdAt"], seconds["runAt"]) == 45


def _seconds_between(earlier: str, later: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


def test_jobs_enqueue_duplicates_strict_and_bad_input(rotor: Invoke, http: httpx.Client) -> None:
    name = make_queue(http)
    assert rotor("jobs", "enqueue", name, "--payload", "{}", "--job-id", "j1").exit_code == 0
    again = rotor("jobs", "enqueue", name, "--payload", "{}", "--job-id", "j1")
    assert again.exit_code == 0 and "Job j1 already exists (duplicate)" in again.stdout and "State: waiting" in again.stdout
    strict = rotor("jobs", "enqueue", name, "--payload", "{}", "--job-id", "j1", "--strict")
    assert strict.exit_code == 1 and "Error [IDEMPOTENCY_CONFLICT]" in strict.stderr
    bad = rotor("jobs", "enqueue", name, "--payload", "{not json")
    assert bad.exit_code == 2 and "not valid JSON" in bad.stderr
    assert rotor("jobs", "enqueue", name).exit_code == 2
    assert http.get(f"/v1/queues/{name}/stats").json()["waiting"] == 1


def test_jobs_get_and_list_with_filters_and_cursor(rotor: Invoke, http: httpx.Client, receiver: Receiver) -> None:
    receiver.script("/get", Reply(200, b'{"sent": true}'))
    name = make_queue(http, callback_url=receiver.url("/get"))
    done = enqueue(http, name, tags=["t"], payload={"contactId": "cid_1"})
    wait_until(lambda: job_state(http, name, done) == "completed")
    shown = rotor("jobs", "get", name, done)
    for expected in (done, "completed", "1/3", '"contactId": "cid_1"', '"sent": true', "Attempt log", "2xx"):
        assert expected in shown.stdout, expected
    assert json.loads(rotor("jobs", "get", name, done, "--json").stdout)["attemptLog"][0]["status"] == 200

    http.post(f"/v1/queues/{name}/pause")
    for _ in range(2):
        enqueue(http, name, tags=["t"])
    first = rotor("jobs", "list", name, "--tag", "t", "--limit", "2")
    assert [row[3] for row in lines(first)[1:3]] == ["t", "t"]
    [cursor] = [row[-1] for row in lines(first) if row[:2] == ["Next", "page:"]]
    rest = rotor("jobs", "list", name, "--tag", "t", "--limit", "2", "--cursor", cursor)
    assert lines(rest)[1][0] == done and "Next page" not in rest.stdout
    assert [row[0] for row in lines(rotor("jobs", "list", name, "--status", "completed"))[1:]] == [done]
    assert "No jobs found." in rotor("jobs", "list", name, "--status", "failed").stdout


def test_jobs_cancel_and_retry(rotor: Invoke, http: httpx.Client, receiver: Receiver) -> None:
    receiver.script("/busy", Reply(delay=1.0))
    name = make_queue(http, callback_url=receiver.url("/busy"))
    active = enqueue(http, name)
    wait_until(lambda: receiver.for_path("/busy"))
    conflict = rotor("jobs", "cancel", name, active)
    assert conflict.exit_code == 1 and "Error [CONFLICT]" in conflict.stderr
    http.post(f"/v1/queues/{name}/pause")
    waiting = enqueue(http, name)
    assert f"Job {waiting} is cancelled." in rotor("jobs", "cancel", name, waiting).stdout
    assert job_state(http, name, waiting) == "cancelled"
    assert f"Job {waiting} is waiting again." in rotor("jobs", "retry", name, waiting).stdout
    assert job_state(http, name, waiting) == "waiting"


def test_jobs_dlq_replay_and_retry_all(rotor: Invoke, http: httpx.Client, receiver: Receiver) -> None:
    receiver.script("/dead", *[Reply(500, b'{"error":"boom"}')] * 2)
    name = make_queue(http, callback_url=receiver.url("/dead"), retry_attempts=1)
    first, second = enqueue(http, name), enqueue(http, name)
    wait_until(lambda: {job_state(http, name, first), job_state(http, name, second)} == {"failed"})
    dlq = rotor("jobs", "dlq", "--queue", name)
    assert lines(dlq)[0] == ["ID", "QUEUE", "ATTEMPTS", "FAIL", "REASON", "FAILED"]
    assert {row[0] for row in lines(dlq)[1:]} == {first, second} and "HTTP 500" in dlq.stdout
    replayed = rotor("jobs", "replay", name, "--job-id", first)
    assert f"Replayed 1 failed job(s) of queue {name}." in replayed.stdout
    retried = rotor("queues", "retry-all", name)
    assert f"Retried 1 failed job(s) in queue {name}." in retried.stdout
    wait_until(lambda: {job_state(http, name, first), job_state(http, name, second)} == {"completed"})
    assert "Replayed 0 failed job(s)" in rotor("jobs", "replay", name).stdout
    assert "The dead-letter queue is empty." in rotor("jobs", "dlq", "--queue", name).stdout


# Status, usage and login ------------------------------------------------------------------------


def test_status_and_usage(rotor: Invoke, http: httpx.Client) -> None:
    status = rotor("status")
    assert status.stdout.splitlines()[:4] == ["API: ok", "Database: ok", f"Version: {http.get('/v1/status').json()['version']}",
                                              "Plan: self-hosted"]
    assert "/ unlimited jobs used this period" in status.stdout
    assert json.loads(rotor("status", "--json").stdout)["api"] == "ok"
    name = make_queue(http)
    enqueue(http, name)
    usage = rotor("usage")
    assert usage.stdout.startswith("Period: ") and [name, "1"] in lines(usage)
    assert json.loads(rotor("usage", "--json").stdout) == http.get("/v1/usage").json()


def test_status_watch_refreshes_until_interrupted(rotor: Invoke, http: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    name = make_queue(http, concurrency=7)
    sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(status_module, "sleep", fake_sleep)
    result = rotor("status", "--watch", "--interval", "2")
    assert result.exit_code == 0, result.output
    assert sleeps == [2.0, 2.0] and result.stdout.count("API: ok") == 2
    assert [name, "7", "active", "0", "/", "0", "/", "0"] in lines(result)


def test_status_watch_keeps_going_while_the_server_is_down(
    rotor: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    started: list[ServerProcess] = []

    def fake_sleep(seconds: float) -> None:  # the server comes up between the first and the second refresh
        if started:
            raise KeyboardInterrupt
        started.append(ServerProcess(data_dir=tmp_path / "late", port=port).start())

    monkeypatch.setattr(status_module, "sleep", fake_sleep)
    try:
        result = rotor("status", "--watch", "--json", "--api-url", f"http://127.0.0.1:{port}")
    finally:
        for server in started:
            server.kill()
    assert result.exit_code == 0, result.output
    assert "Could not reach" in result.stderr
    assert json.loads(result.stdout.strip())["status"]["api"] == "ok"


def test_status_watch_stops_on_an_api_error(rotor: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_module, "sleep", lambda seconds: None)
    result = rotor("status", "--watch", "--api-key", "rt_ws_not_a_key")
    assert result.exit_code == 1 and "Error [UNAUTHORIZED]" in result.stderr


def test_login_checks_the_key_and_saves_it_owner_only(
    rotor: Invoke, shared_server: ServerProcess, config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROTOR_API_KEY")
    result = rotor("login", "--api-key", shared_server.api_key, "--api-url", shared_server.url)
    assert result.exit_code == 0, result.output
    path = config_dir / "config.json"
    assert json.loads(path.read_text()) == {"apiKey": shared_server.api_key, "apiUrl": shared_server.url}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    assert f"Saved to {path}" in result.stdout and shared_server.api_key not in result.stdout
    assert list(config_dir.iterdir()) == [path]
    as_json = json.loads(rotor("login", "--api-key", shared_server.api_key, "--json").stdout)
    assert (as_json["saved"], as_json["status"]["api"]) == (str(path), "ok")


def test_login_prompts_for_the_key_without_echoing_it(rotor: Invoke, shared_server: ServerProcess, config_dir: Path) -> None:
    result = rotor("login", input=f"{shared_server.api_key}\n")
    assert result.exit_code == 0, result.output
    assert shared_server.api_key not in result.output
    assert json.loads((config_dir / "config.json").read_text())["apiKey"] == shared_server.api_key


def test_login_keeps_other_settings_and_tightens_permissions(
    rotor: Invoke, shared_server: ServerProcess, config_dir: Path
) -> None:
    config_dir.mkdir(mode=0o755)
    (config_dir / "config.json").write_text(json.dumps({"apiKey": "old", "theme": "dark"}))
    (config_dir / "config.json").chmod(0o644)
    assert rotor("login", "--api-key", shared_server.api_key).exit_code == 0
    path = config_dir / "config.json"
    assert json.loads(path.read_text()) == {"apiKey": shared_server.api_key, "theme": "dark", "apiUrl": shared_server.url}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(config_dir.stat().st_mode) == 0o700


def test_login_with_a_bad_key_saves_nothing(rotor: Invoke, config_dir: Path) -> None:
    result = rotor("login", "--api-key", "rt_ws_wrong")
    assert result.exit_code == 1 and "Error [UNAUTHORIZED]" in result.stderr
    assert not (config_dir / "config.json").exists()


def test_an_unreadable_config_is_an_error(rotor: Invoke, config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROTOR_API_KEY")
    config_dir.mkdir()
    (config_dir / "config.json").write_text("{oops")
    result = rotor("status")
    assert result.exit_code == 1 and "Cannot read" in result.stderr
