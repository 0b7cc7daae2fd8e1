"""Disk full: the API answers 503 UNAVAILABLE, loses nothing committed, and recovers when space returns.

The data directory is a small tmpfs mounted for the test (root only: the test is skipped, saying
why, where mounting is not permitted). The disk is filled with a filler file until enqueues fail;
then the filler is removed and the same server must accept writes again. Afterwards the server is
killed and restarted: exactly the acknowledged jobs are there.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import ServerProcess, wait_until

DISK = "8m"
BIG_PAYLOAD = {"blob": "x" * 4000}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of a few MiB, unmounted at the end (after the servers using it are killed)."""
    if os.geteuid() != 0:
        pytest.skip("disk-full test: mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"disk-full test: cannot mount a tmpfs here ({done.stderr.strip()})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path) -> Path:
    """Write a filler file until the filesystem refuses more."""
    filler = mount / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def _enqueue(http: httpx.Client, count: int, payload: object) -> httpx.Response:
    return http.post("/v1/queues/disk/jobs/batch", json={"jobs": [{"payload": payload}] * count})


def _job_ids(http: httpx.Client) -> set[str]:
    found: set[str] = set()
    cursor = None
    while True:
        page = http.get("/v1/queues/disk/jobs", params={"limit": 500, **({"cursor": cursor} if cursor else {})}).json()
        found.update(job["id"] for job in page["data"])
        cursor = page["nextCursor"]
        if not cursor:
            return found


@pytest.mark.slow
@pytest.mark.sqlite_only  # the small disk is the data directory: SQLite's database file (PostgreSQL keeps its own)
def test_disk_full_answers_503_keeps_committed_jobs_and_recovers(
    small_disk: Path, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server(data_dir=small_disk)  # the log goes beside the mount, not on it
    acked: set[str] = set()
    with server.client() as http:
        assert http.post("/v1/queues", json={"name": "disk"}).status_code == 201  # no callback: jobs stay put
        response = _enqueue(http, 500, {"n": 1})
        assert response.status_code == 201
        acked.update(job["id"] for job in response.json()["data"])

        filler = _fill(small_disk)
        refused = None
        for _ in range(30):  # the WAL may still have room for a few batches
            response = _enqueue(http, 200, BIG_PAYLOAD)
            if response.status_code != 201:
                refused = response
                break
            acked.update(job["id"] for job in response.json()["data"])
        assert refused is not None, "the disk never filled up"
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "UNAVAILABLE"
        single = http.post("/v1/queues/disk/jobs", json={"payload": BIG_PAYLOAD})
        assert single.status_code == 503 and single.json()["error"]["code"] == "UNAVAILABLE"
        assert http.get("/v1/queues/disk/stats").json()["waiting"] == len(acked), "reads still work"

        filler.unlink()

        def accepted() -> bool:
            response = _enqueue(http, 100, {"n": 2})
            acked.update(job["id"] for job in response.json().get("data", []))
            return response.status_code == 201

        wait_until(accepted, timeout=10, interval=0.2)
        stored = _job_ids(http)
    assert stored == acked, "every acknowledged job is stored, and no refused one"

    server.kill()
    restarted = make_server(data_dir=small_disk)
    with restarted.client() as http:
        assert _job_ids(http) == stored, "what was committed before the kill is what is there after it"
