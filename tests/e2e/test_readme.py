"""The README's quickstart, run as written: its shell commands, its handler and its Python example.

The code blocks are read from README.md itself. Only what must differ on a test machine is
substituted: the ports (8080 and 3000 become free ones), the elided key `rt_ws_...` and job id
`job_...`; HOME points into the test's directory, so `rotor login` writes no real config. Every job
the README enqueues must be delivered to the README's handler, pass its signature check and
complete: none may end in the dead-letter queue.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, storage_env, wait_until

README = Path(__file__).resolve().parents[2] / "README.md"
ADMIN_KEY = re.compile(r"Admin API key \(shown once, save it now\): (rt_ws_\S+)")
CALLBACK_SECRET = re.compile(r"New callback secret: (rcs_\S+)")
ENQUEUED = re.compile(r"Enqueued job (job_[0-9a-f]{32}) in queue welcome-emails\.")


def section(markdown: str, heading: str) -> str:
    """The text under `heading` up to the next heading of the same or a higher level."""
    level = len(heading.split(" ")[0])
    lines = markdown.splitlines(keepends=True)
    start = lines.index(f"{heading}\n")
    fenced = False
    for end in range(start + 1, len(lines)):
        fenced ^= lines[end].startswith("```")
        if not fenced and re.match(rf"#{{1,{level}}} ", lines[end]):
            break
    else:
        end = len(lines)
    return "".join(lines[start:end])


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def shell_commands(block: str) -> list[str]:
    """The commands of a shell block: comment lines dropped, `\\` continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.split(" #")[0].strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


class Quickstart:
    """The README's blocks with the test's ports, plus the environment a new user's shell would have."""

    def __init__(self, tmp_path: Path) -> None:
        markdown = README.read_text(encoding="utf-8")
        python_part = section(markdown, "### The same from Python")
        quickstart = section(markdown, "## Quickstart (Rotor's, with rotor-lite in place of rotor.sh)")
        quickstart = quickstart.replace(python_part, "")
        self.api_port, self.handler_port = free_port(), free_port()
        self.setup, self.use = (shell_commands(block) for block in code_blocks(quickstart, "bash"))
        [self.handler] = code_blocks(quickstart, "python")
        [self.python] = code_blocks(python_part, "python")
        self.processes: list[subprocess.Popen[bytes]] = []
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.cwd = tmp_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ROTOR_")}
        self.env.update(HOME=str(self.home), PYTHONUNBUFFERED="1", ROTOR_SERVER_PORT=str(self.api_port),
                        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        self.env.update(storage_env(tmp_path / "data", None))  # the run's backend for the server's ./data

    def ported(self, text: str) -> str:
        return (text.replace("127.0.0.1:8080", f"127.0.0.1:{self.api_port}")
                .replace("127.0.0.1:3000", f"127.0.0.1:{self.handler_port}")
                .replace('("127.0.0.1", 3000)', f'("127.0.0.1", {self.handler_port})'))

    def start(self, command: str, log: str, **env: str) -> subprocess.Popen[bytes]:
        with open(self.cwd / log, "wb") as out:
            process = subprocess.Popen(command, shell=True, cwd=self.cwd, env={**self.env, **env}, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def run(self, command: str, stdin: str | None = None) -> str:
        done = subprocess.run(command, shell=True, cwd=self.cwd, env=self.env, input=stdin, capture_output=True,
                              text=True, timeout=60, start_new_session=True)  # no terminal: the key prompt reads stdin
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr

    def output(self, log: str) -> str:
        return (self.cwd / log).read_text(errors="replace")


@pytest.fixture
def quickstart(tmp_path: Path) -> Iterator[Quickstart]:
    guide = Quickstart(tmp_path)
    yield guide
    for process in guide.processes:  # each runs in its own session: kill the shell and what it started
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_the_readme_quickstart_and_python_example_deliver_every_job(quickstart: Quickstart) -> None:
    guide = quickstart
    serve, login, create_queue = guide.setup
    assert serve == "ROTOR_CALLBACKS_ALLOW_PRIVATE_NETWORKS=true rotor-lite serve"
    server = guide.start(serve, "serve.log")
    wait_until(lambda: ADMIN_KEY.search(guide.output("serve.log")) or server.poll() is not None, timeout=30)
    assert server.poll() is None, guide.output("serve.log")
    [key] = ADMIN_KEY.findall(guide.output("serve.log"))

    logged_in = guide.run(guide.ported(login), stdin=f"{key}\n")
    config = guide.home / ".rotor" / "config.json"
    assert "Logged in" in logged_in and key not in logged_in
    assert json.loads(config.read_text())["apiKey"] == key and stat.S_IMODE(config.stat().st_mode) == 0o600

    [secret] = CALLBACK_SECRET.findall(guide.run(guide.ported(create_queue)))
    (guide.cwd / "handler.py").write_text(guide.ported(guide.handler))
    handler = guide.start(f"{shlex.quote(sys.executable)} handler.py", "handler.log", ROTOR_CALLBACK_SECRET=secret)
    wait_until(lambda: _listening(guide.handler_port) or handler.poll() is not None, timeout=15)
    assert handler.poll() is None, guide.output("handler.log")

    enqueue, get_job, list_queues, watch = guide.use
    [job_id] = ENQUEUED.findall(guide.run(enqueue))
    with api(guide, key) as http:
        wait_until(lambda: http.get(f"/v1/queues/welcome-emails/jobs/{job_id}").json()["state"] == "completed")
    shown = guide.run(get_job.replace("job_...", job_id))
    assert job_id in shown and "completed" in shown
    listed = guide.run(list_queues)
    assert any(line.split()[:3] == ["welcome-emails", "5", "active"] for line in listed.splitlines()), listed
    watcher = guide.start(watch, "watch.log")
    wait_until(lambda: "API: ok" in guide.output("watch.log") and "welcome-emails" in guide.output("watch.log"))

    python = guide.ported(guide.python).replace("rt_ws_...", key)
    guide.run(f"{shlex.quote(sys.executable)} -c {shlex.quote(python)}")

    with api(guide, key) as http:
        accepted = http.get("/v1/usage").json()["executions"]["total"]
        try:
            wait_until(lambda: _states(http) == {"completed": accepted}, timeout=20)
        except AssertionError:
            assert _states(http) == {"completed": accepted}  # shows where the jobs are instead
        assert http.get("/v1/dlq").json()["data"] == []
        jobs = [job for queue in http.get("/v1/queues").json()["data"]
                for job in http.get(f"/v1/queues/{queue['name']}/jobs").json()["data"]]
    assert accepted == len(jobs) > 2 and {job["attempts"] for job in jobs} == {1}  # every first delivery was accepted
    delivered = re.findall(r"job (\S+) attempt 1:", guide.output("handler.log"))
    assert sorted(delivered) == sorted(job["id"] for job in jobs)


def _states(http: httpx.Client) -> dict[str, int]:
    """Jobs per state over every queue of the workspace, the states with none left out."""
    totals: Counter[str] = Counter()
    for queue in http.get("/v1/queues").json()["data"]:
        totals.update(http.get(f"/v1/queues/{queue['name']}/stats").json())
    return {state: count for state, count in totals.items() if count}


def api(guide: Quickstart, key: str) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{guide.api_port}", headers={"Authorization": f"Bearer {key}"})


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


RUN_ID = re.compile(r"^\s+(run_[0-9a-f]{32})$", re.MULTILINE)


def test_the_readme_workflow_quickstart_runs_as_written(quickstart: Quickstart) -> None:
    """The app block saved as app.py and served as its first line says; the shell block with the run's id."""
    guide = quickstart
    markdown = README.read_text(encoding="utf-8")
    workflows = section(markdown, "## Durable workflows")
    [app] = code_blocks(workflows, "python")
    [commands] = code_blocks(workflows, "bash")
    register, send, show, signal_ = shell_commands(commands)
    serve_app = app.splitlines()[0].split("run it with: ", 1)[1]
    assert serve_app == "ROTOR_SIGNING_KEY=$(rotor functions signing-key) rotor-lite workflows serve app:app --port 3000"

    key = "rt_ws_readme_workflows_key_000000000000"
    guide.env.update(ROTOR_API_KEY=key, ROTOR_API_URL=f"http://127.0.0.1:{guide.api_port}")
    server = guide.start("ROTOR_CALLBACKS_ALLOW_PRIVATE_NETWORKS=true rotor-lite serve", "serve.log",
                         ROTOR_AUTH_BOOTSTRAP_API_KEY=key)
    wait_until(lambda: _listening(guide.api_port) or server.poll() is not None, timeout=30)
    (guide.cwd / "app.py").write_text(app)
    served_app = guide.start(serve_app.replace("--port 3000", f"--port {guide.handler_port}"), "app.log")
    wait_until(lambda: _listening(guide.handler_port) or served_app.poll() is not None, timeout=30)
    assert served_app.poll() is None, guide.output("app.log")

    guide.run(guide.ported(register))
    [run_id] = RUN_ID.findall(guide.run(send))
    with api(guide, key) as http:
        wait_until(lambda: http.get(f"/v1/runs/{run_id}").json()["status"] == "waiting", timeout=20)
        tree = guide.run(show.replace("run_…", run_id))
        assert "fetch-profile:1 (run) completed" in tree and "approve:1 (wait_for_signal) waiting" in tree
        guide.run(signal_.replace("run_…", run_id))
        wait_until(lambda: http.get(f"/v1/runs/{run_id}").json()["status"] == "completed", timeout=20)
        assert http.get(f"/v1/runs/{run_id}").json()["output"] == {"sent": True}
    assert "welcome u_1@example.com" in guide.output("app.log")
