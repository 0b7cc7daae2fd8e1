"""Crashes: the app dies in the middle of a step, or rotor-lite is killed between a step's result and its checkpoint.

Each completed step's side effect happens once; the step in flight at the crash at most twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import ServerProcess, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]


class AppProcess:
    """The crash app in its own `uvicorn` process."""

    def __init__(self, marks: Path, signing_key: str, crash_in: str = "", port: int | None = None) -> None:
        self.port = port or free_port()
        self.marks = marks
        self.env = {**os.environ, "WF_MARKS": str(marks), "ROTOR_SIGNING_KEY": signing_key, "WF_CRASH_IN": crash_in}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> AppProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.e2e.wf_crash_app:app", "--port", str(self.port), "--log-level", "warning"],
            cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        wait_until(lambda: _listening(self.port) or self.process is None or self.process.poll() is not None)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def counts(self) -> Counter[str]:
        return Counter(self.marks.read_text().split()) if self.marks.exists() else Counter()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[Callable[..., AppProcess]]:
    started: list[AppProcess] = []

    def make(signing_key: str, crash_in: str = "", port: int | None = None) -> AppProcess:
        app = AppProcess(tmp_path / "marks.txt", signing_key, crash_in, port).start()
        started.append(app)
        return app

    yield make
    for app in started:
        app.stop()


def register_and_send(server: ServerProcess, url: str, data: dict[str, float]) -> str:
    http = server.client()
    body = {"id": "crashy", "serve_url": url, "trigger_type": "event", "trigger_event": "crashy.go", "retries": 10}
    assert http.post("/v1/functions", json=body).status_code in (200, 201)
    reply = http.post("/v1/events", json={"name": "crashy.go", "data": data})
    [run_id] = reply.json()["runIds"]
    return str(run_id)


def run_of(server: ServerProcess, run_id: str) -> dict[str, object]:
    return dict(server.client().get(f"/v1/runs/{run_id}").json())


def test_the_app_dies_in_the_middle_of_a_step(make_server: Callable[..., ServerProcess], apps: Callable[..., AppProcess]) -> None:
    server = make_server()
    key = server.client().get("/v1/functions/signing-key").json()["signingKey"]
    app = apps(key, crash_in="second")
    run_id = register_and_send(server, app.url, {})
    wait_until(lambda: app.process is not None and app.process.poll() is not None)  # it died inside "second"
    apps(key, port=app.port)  # back where the function is served
    run = wait_until(lambda: (r := run_of(server, run_id))["status"] == "completed" and r, timeout=30)
    assert run["output"] == ["first-done", "second-done", "third-done"]
    counts = app.counts()
    assert counts["first:start"] == counts["first:end"] == 1  # completed before the crash: never again
    assert counts["second:start"] == 2 and counts["second:end"] == 1  # in flight at the crash: twice at most
    assert counts["third:start"] == counts["third:end"] == 1


def test_rotor_lite_is_killed_between_a_steps_result_and_its_checkpoint(
    make_server: Callable[..., ServerProcess], apps: Callable[..., AppProcess]
) -> None:
    server = make_server()
    key = server.client().get("/v1/functions/signing-key").json()["signingKey"]
    app = apps(key)
    run_id = register_and_send(server, app.url, {"seconds": 0.5})
    wait_until(lambda: app.counts()["second:start"] == 1)
    server.kill()  # the step is running in the app: its result will have nowhere to go
    wait_until(lambda: app.counts()["second:end"] == 1)
    restarted = make_server(data_dir=server.data_dir)
    run = wait_until(lambda: (r := run_of(restarted, run_id))["status"] == "completed" and r, timeout=30)
    assert run["output"] == ["first-done", "second-done", "third-done"]
    counts = app.counts()
    assert counts["first:end"] == 1
    assert 1 <= counts["second:end"] <= 2  # the step whose result was lost ran again (at most twice)
    assert counts["third:end"] == 1
