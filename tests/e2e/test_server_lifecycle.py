"""The server process: configuration precedence and errors, bootstrap key, SIGTERM drain, data-dir lock, admin CLI."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import Receiver, Reply, ServerProcess, db_execute, free_port, storage_env, storage_url_of, wait_until

KEY = "rt_ws_lifecycle_key_00000000000000000000"
GENERATED_KEY = re.compile(r"rt_ws_[A-Za-z0-9_-]{20,}")
Spawn = Callable[..., subprocess.Popen[bytes]]


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any ROTOR_* variable, plus `extra`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ROTOR_")}, **extra}


def with_storage(args: tuple[str, ...], env: dict[str, str]) -> dict[str, str]:
    """`env` plus, under `--backend postgres`, the database of the `--data-dir` in `args` (one per data directory)."""
    if "--data-dir" not in args:
        return env
    return {**env, **storage_env(Path(args[args.index("--data-dir") + 1]), None)}


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start `python -m rotor_lite …` in tmp_path with output to a log file; every process is killed at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"proc-{len(started)}.log", "wb")  # noqa: SIM115 - the child writes to it
        process = subprocess.Popen([sys.executable, "-m", "rotor_lite", *args], stdout=log, stderr=subprocess.STDOUT,
                                   env=with_storage(args, env or clean_env(ROTOR_AUTH_BOOTSTRAP_API_KEY=KEY)), cwd=tmp_path)
        log.close()
        started.append(process)
        return process

    yield run
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def output_of(tmp_path: Path, index: int) -> str:
    return (tmp_path / f"proc-{index}.log").read_text(errors="replace")


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def started_or_exited(process: subprocess.Popen[bytes], port: int) -> bool:
    return healthy(port) or process.poll() is not None


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rotor_lite", *args], capture_output=True, text=True, cwd=cwd,
                          env=with_storage(args, clean_env()), timeout=30, check=False)


# Configuration ----------------------------------------------------------------------------------


def test_port_comes_from_file_then_env_then_flag(tmp_path: Path, spawn: Spawn) -> None:
    file_port, env_port, flag_port = free_port(), free_port(), free_port()
    config = tmp_path / "rotor.toml"
    config.write_text(f'[server]\nport = {file_port}\n\n[auth]\nbootstrap_api_key = "{KEY}"\n')
    env_wins = clean_env(ROTOR_SERVER_PORT=str(env_port))
    cases = [
        (spawn("serve", "--config", str(config), "--data-dir", str(tmp_path / "d0")), file_port),
        (spawn("serve", "--config", str(config), "--data-dir", str(tmp_path / "d1"), env=env_wins), env_port),
        (spawn("serve", "--config", str(config), "--data-dir", str(tmp_path / "d2"), "--port", str(flag_port), env=env_wins), flag_port),
    ]

    for index, (process, port) in enumerate(cases):
        wait_until(partial(started_or_exited, process, port), timeout=20)
        assert process.poll() is None, output_of(tmp_path, index)
        assert f"listening on http://127.0.0.1:{port}" in output_of(tmp_path, index)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {KEY}"}) as http:
            assert http.get("/v1/queues").status_code == 200  # the file's [auth] section was read too


@pytest.mark.parametrize(
    ("toml", "env", "key"),
    [
        ('[server]\nport = "abc"\n', {}, "server.port"),
        ("[server]\nprot = 8081\n", {}, "server.prot"),
        ('[dispatch]\nlease = "soon"\n', {}, "dispatch.lease"),
        ('[storage]\nsynchronous = "SOMETIMES"\n', {}, "storage.synchronous"),
        ("", {"ROTOR_SERVER_PORT": "eighty"}, "server.port"),
        ("", {"ROTOR_LIMITS_MONTHLY_JOB_QUOTA": "lots"}, "limits.monthly_job_quota"),
    ],
    ids=["wrong-type", "unknown-key", "bad-duration", "bad-choice", "env-wrong-type", "env-other-section"],
)
def test_a_bad_setting_stops_the_server_at_start_naming_the_key(
    tmp_path: Path, spawn: Spawn, toml: str, env: dict[str, str], key: str
) -> None:
    config = tmp_path / "rotor.toml"
    config.write_text(toml)
    process = spawn("serve", "--config", str(config), "--data-dir", str(tmp_path / "data"),
                    env=clean_env(ROTOR_AUTH_BOOTSTRAP_API_KEY=KEY, **env))

    assert process.wait(30) != 0
    assert key in output_of(tmp_path, 0)
    assert not (tmp_path / "data").exists()  # stopped before touching storage


# Bootstrap --------------------------------------------------------------------------------------


def test_first_start_prints_a_generated_key_once(make_server: Callable[..., ServerProcess]) -> None:
    first = make_server(ROTOR_AUTH_BOOTSTRAP_API_KEY="")
    [key] = GENERATED_KEY.findall(first.log())
    with first.client(key) as http:
        assert http.get("/v1/queues").status_code == 200
    assert first.terminate() == 0

    second = make_server(first.data_dir, ROTOR_AUTH_BOOTSTRAP_API_KEY="")
    assert GENERATED_KEY.findall(second.log()) == []
    with second.client(key) as http:
        assert http.get("/v1/queues").status_code == 200  # the key printed on the first start still works


# Shutdown and the data directory ------------------------------------------------------------------


@pytest.mark.both_delivery_paths
def test_sigterm_lets_the_delivery_in_flight_finish_and_exits_0(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    receiver.script("/slow", Reply(delay=1.5, body=b'{"done": true}'))
    server = make_server()
    with server.client() as http:
        assert http.post("/v1/queues", json={"name": "slow", "callback_url": receiver.url("/slow")}).status_code == 201
        job_id = http.post("/v1/queues/slow/jobs", json={"payload": {"n": 1}}).json()["id"]
    [got] = wait_until(lambda: receiver.for_path("/slow"))

    assert server.terminate() == 0, server.log()
    assert time.time() >= got.at + 1.45  # it exited after the callback answered, not by cutting it off
    assert receiver.in_flight["/slow"] == 0

    restarted = make_server(server.data_dir)
    with restarted.client() as http:
        job = http.get(f"/v1/queues/slow/jobs/{job_id}").json()
    assert job["state"] == "completed" and job["attempts"] == 1 and job["result"] == {"done": True}
    assert [a["outcome"] for a in job["attemptLog"]] == ["2xx"]
    assert len(receiver.for_path("/slow")) == 1  # recorded before exit, so not delivered again


@pytest.mark.both_delivery_paths
def test_after_sigterm_a_job_that_falls_due_during_the_drain_is_not_claimed(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    receiver.script("/draining", Reply(delay=2.5))  # keeps the server draining until well after the second job is due
    server = make_server()
    with server.client() as http:
        created = http.post("/v1/queues", json={"name": "draining", "concurrency": 5, "callback_url": receiver.url("/draining")})
        assert created.status_code == 201, created.text
        in_flight = http.post("/v1/queues/draining/jobs", json={"payload": {"n": 1}}).json()["id"]
        wait_until(lambda: receiver.for_path("/draining"))
        due_later = http.post("/v1/queues/draining/jobs", json={"payload": {"n": 2}, "delay": "1s"}).json()["id"]

    assert server.terminate() == 0, server.log()
    assert [r.headers["x-rotor-job-id"] for r in receiver.for_path("/draining")] == [in_flight]
    left = {row[0]: row[1] for row in db_execute(server.data_dir, "SELECT id, state FROM job")}  # what it left
    assert left == {in_flight: "completed", due_later: "delayed"}

    restarted = make_server(server.data_dir)
    with restarted.client() as http:
        wait_until(lambda: http.get(f"/v1/queues/draining/jobs/{due_later}").json()["state"] == "completed")
    assert [r.headers["x-rotor-job-id"] for r in receiver.for_path("/draining")] == [in_flight, due_later]


def test_a_second_server_on_the_same_data_dir_refuses_to_start(make_server: Callable[..., ServerProcess]) -> None:
    first = make_server()
    second = ServerProcess(data_dir=first.data_dir)
    try:
        with pytest.raises(RuntimeError) as info:
            second.start()
    finally:
        second.kill()
    assert second.process is not None and second.process.returncode not in (0, None)
    assert second.log().splitlines() == [f"error: another rotor-lite server is already using {first.data_dir}"]
    assert healthy(first.port)


def test_a_busy_port_stops_the_start_in_one_line_before_the_admin_key_is_made(tmp_path: Path, spawn: Spawn) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        refused = spawn("serve", "--port", str(port), "--data-dir", str(tmp_path / "data"), env=clean_env())
        assert refused.wait(30) == 1
    assert output_of(tmp_path, 0).splitlines() == [f"error: port {port} is in use"]

    started = spawn("serve", "--port", str(port), "--data-dir", str(tmp_path / "data"), env=clean_env())
    wait_until(partial(started_or_exited, started, port), timeout=20)
    assert len(GENERATED_KEY.findall(output_of(tmp_path, 1))) == 1  # the first start that got the port made the key


# Offline admin commands ---------------------------------------------------------------------------


def test_admin_cli_creates_workspaces_and_keys_next_to_a_running_server(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = make_server()
    data_dir = str(server.data_dir)
    with server.client() as http:
        assert http.post("/v1/queues", json={"name": "in-default"}).status_code == 201

    created = run_cli("workspaces", "create", "acme", "--data-dir", data_dir, "--json", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    workspace: dict[str, Any] = json.loads(created.stdout)
    assert set(workspace) == {"id", "name", "key"} and workspace["name"] == "acme"
    assert re.fullmatch(r"ws_[0-9a-f]{32}", workspace["id"]) and workspace["key"].startswith("rt_ws_")

    made = run_cli("keys", "create", "--workspace", "acme", "--label", "ci", "--json", "--data-dir", data_dir, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    key: dict[str, Any] = json.loads(made.stdout)
    assert key["workspace"] == "acme" and key["label"] == "ci" and key["role"] == "admin"
    assert key["key"].startswith("rt_ws_") and key["key"] != workspace["key"]

    with server.client(workspace["key"]) as http:
        assert http.get("/v1/queues").json()["data"] == []  # acme's own list: the default workspace's queue is not in it
        assert http.post("/v1/queues", json={"name": "in-acme"}).status_code == 201
    with server.client(key["key"]) as http:
        assert [q["name"] for q in http.get("/v1/queues").json()["data"]] == ["in-acme"]

    default = run_cli("keys", "create", "--workspace", "default", "--role", "viewer", "--json", "--data-dir", data_dir, cwd=tmp_path)
    assert default.returncode == 0, default.stderr
    with server.client(json.loads(default.stdout)["key"]) as http:
        assert [q["name"] for q in http.get("/v1/queues").json()["data"]] == ["in-default"]
        forbidden = http.post("/v1/queues", json={"name": "viewer-made"})
        assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "FORBIDDEN"

    missing = run_cli("keys", "create", "--workspace", "no-such-ws", "--data-dir", data_dir, cwd=tmp_path)
    assert missing.returncode != 0 and "no-such-ws" in missing.stderr
    taken = run_cli("workspaces", "create", "acme", "--data-dir", data_dir, cwd=tmp_path)
    assert taken.returncode != 0 and "acme" in taken.stderr


def test_the_data_directory_and_its_files_are_owner_only(make_server: Callable[..., ServerProcess]) -> None:
    def owner_only(data_dir: Path) -> bool:
        """Every file is 0600, the master key and the lock among them, and SQLite's files when it keeps them."""
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in data_dir.iterdir()}
        sqlite = () if storage_url_of(data_dir) else ("rotor.db", "rotor.db-shm", "rotor.db-wal")
        return set(modes) >= {"master.key", "server.lock", *sqlite} and set(modes.values()) == {0o600}

    previous = os.umask(0o022)  # the usual umask, under which files are created world-readable
    try:
        server = make_server()
        with server.client() as http:  # a write: the WAL and its index exist
            assert http.post("/v1/queues", json={"name": "q"}).status_code == 201
        assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700 and owner_only(server.data_dir)
        server.kill()  # the WAL and its index stay behind
        for path in server.data_dir.iterdir():  # as an older version left them
            path.chmod(0o644)
        make_server(data_dir=server.data_dir)
    finally:
        os.umask(previous)
    assert owner_only(server.data_dir)


def test_a_start_that_fails_after_opening_the_database_ends_the_process(tmp_path: Path, spawn: Spawn) -> None:
    """A master key that cannot open the data directory stops the start: the process exits, it does not
    hang on the database's threads with the port taken."""
    data, port = str(tmp_path / "data"), free_port()
    first = spawn("serve", "--port", str(port), "--data-dir", data, env=clean_env(ROTOR_AUTH_BOOTSTRAP_API_KEY=KEY))
    wait_until(lambda: healthy(port), timeout=20)
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    other_key = base64.b64encode(b"k" * 32).decode()
    refused = spawn("serve", "--port", str(port), "--data-dir", data, env=clean_env(ROTOR_SECURITY_MASTER_KEY=other_key))
    assert refused.wait(20) != 0
    assert "the master key does not match" in output_of(tmp_path, 1)
    assert not healthy(port)


def test_a_bootstrap_key_of_the_wrong_form_is_a_one_line_error(tmp_path: Path, spawn: Spawn) -> None:
    refused = spawn("serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "data"),
                    env=clean_env(ROTOR_BOOTSTRAP_API_KEY="not-a-rotor-key"))
    assert refused.wait(20) == 1
    assert output_of(tmp_path, 0).splitlines() == [
        "error: invalid configuration: auth.bootstrap_api_key must start with 'rt_'"
    ]


@pytest.mark.postgres_only
def test_rotating_the_master_key_refuses_while_another_node_uses_the_database(tmp_path: Path) -> None:
    master = base64.b64encode(bytes(range(32))).decode()
    node = ServerProcess(data_dir=tmp_path / "node", env={"ROTOR_SECURITY_MASTER_KEY": master}).start()
    try:
        elsewhere = tmp_path / "admin-machine"  # its own data dir: its lock says nothing of the node
        refused = subprocess.run(
            [sys.executable, "-m", "rotor_lite", "admin", "rotate-master-key", "--new-key",
             base64.b64encode(os.urandom(32)).decode(), "--data-dir", str(elsewhere)],
            capture_output=True, text=True, timeout=30, check=False,
            env=clean_env(ROTOR_SECURITY_MASTER_KEY=master, **storage_env(elsewhere, storage_url_of(node.data_dir))),
        )
        assert refused.returncode != 0 and "stop every rotor-lite node first" in refused.stderr, refused.stderr
        with node.client() as http:
            assert http.get("/v1/queues").status_code == 200  # still working under the old key
    finally:
        node.kill()
