"""`/metrics` against a real server: who may scrape, whose series each scraper sees, deleted queues gone."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import ServerProcess, offline

TOKEN = "scrape-token-for-the-test"


def _series(response: httpx.Response) -> dict[str, set[tuple[str, str]]]:
    """Per metric name, the (workspace, queue) pairs it has samples for; `-` for process-wide ones."""
    assert response.status_code == 200, response.text
    found: dict[str, set[tuple[str, str]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(family.name, set()).add((sample.labels.get("workspace", "-"), sample.labels.get("queue", "-")))
    return found


def test_scrapes_need_a_workspace_key_or_the_token_and_see_their_workspaces(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server(ROTOR_METRICS_TOKEN=TOKEN)
    viewer = offline(server.data_dir, "keys", "create", "--workspace", "default", "--role", "viewer")["key"]
    other = offline(server.data_dir, "workspaces", "create", "other")
    with server.client() as http:
        http.post("/v1/queues", json={"name": "mine"})
        http.post("/v1/queues/mine/jobs", json={})
        default_ws = http.get("/v1/audit").json()["data"][0]["workspace_id"]
    with server.client(other["key"]) as http:
        http.post("/v1/queues", json={"name": "theirs"})
        http.post("/v1/queues/theirs/jobs", json={})
    queue_key = offline(server.data_dir, "keys", "create", "--workspace", "default", "--queue", "mine")["key"]

    def scrape(key: str | None) -> httpx.Response:
        return httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {key}"} if key else {})

    assert scrape(None).status_code == 401 and scrape("not-the-token").status_code == 401
    refused = scrape(queue_key)  # a queue key reaches its queue's routes only
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "FORBIDDEN"
    mine, theirs, everything = _series(scrape(server.api_key)), _series(scrape(other["key"])), _series(scrape(TOKEN))
    assert _series(scrape(viewer)) == mine  # a viewer reads its workspace's metrics (a dashboard's key)
    for name in ("rotor_jobs_enqueued", "rotor_jobs"):
        assert mine[name] == {(default_ws, "mine")} and theirs[name] == {(other["id"], "theirs")}
        assert everything[name] == {(default_ws, "mine"), (other["id"], "theirs")}
    assert "rotor_jobs_stalled" in everything and "rotor_jobs_stalled" not in mine  # process-wide: the token only

    with server.client() as http:
        assert http.delete("/v1/queues/mine").status_code == 204
    after = _series(scrape(TOKEN))
    assert after["rotor_jobs_enqueued"] == after["rotor_jobs"] == {(other["id"], "theirs")}
    assert "rotor_jobs" not in _series(scrape(server.api_key))
