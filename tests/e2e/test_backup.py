"""`rotor-lite admin backup`: a consistent copy of a running server's database, from which a server starts."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from tests.helpers import ServerProcess, storage_env

JOBS_BEFORE = 300


def backup(data_dir: Path, target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rotor_lite", "admin", "backup", "--to", str(target), "--data-dir", str(data_dir), "--json"],
        capture_output=True, text=True, timeout=60, check=False,
    )


@contextmanager
def enqueueing(server: ServerProcess, queue: str) -> Iterator[list[int]]:
    """Single enqueues into `queue` from another thread until the block ends; yields [jobs accepted]."""
    accepted = [0]
    stop = threading.Event()

    def run() -> None:
        with server.client() as http:
            while not stop.is_set():
                if http.post(f"/v1/queues/{queue}/jobs", json={"payload": {}, "delay": "1h"}).status_code == 201:
                    accepted[0] += 1

    writer = threading.Thread(target=run)
    writer.start()
    try:
        yield accepted
    finally:
        stop.set()
        writer.join(30)


@pytest.mark.sqlite_only  # the backup is a copy of the SQLite file
def test_a_backup_taken_while_the_server_writes_has_every_job_and_a_server_starts_from_it(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path / "data").start()
    target = tmp_path / "backups" / "rotor-backup.db"
    target.parent.mkdir()
    try:
        with server.client() as http:
            assert http.post("/v1/queues", json={"name": "later"}).status_code == 201
            jobs = [{"payload": {"n": n}, "delay": "1h"} for n in range(JOBS_BEFORE)]
            assert http.post("/v1/queues/later/jobs/batch", json={"jobs": jobs}).status_code == 201
        with enqueueing(server, "later") as accepted:
            done = backup(server.data_dir, target)
        assert accepted[0] > 0, "the server took no writes during the backup"
    finally:
        server.kill()

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"database": str(server.data_dir / "rotor.db"), "backup": str(target),
                                       "bytes": target.stat().st_size}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and sorted(p.name for p in target.parent.iterdir()) == [target.name]
    with closing(sqlite3.connect(target)) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
        copied = copy.execute("SELECT count(*) FROM job").fetchone()[0]
    assert JOBS_BEFORE <= copied <= JOBS_BEFORE + accepted[0]

    restored_dir = tmp_path / "restored"
    restored_dir.mkdir(mode=0o700)
    shutil.copy(target, restored_dir / "rotor.db")
    shutil.copy(server.data_dir / "master.key", restored_dir / "master.key")
    restored = ServerProcess(data_dir=restored_dir).start()
    try:
        with restored.client() as http:  # the bootstrap key is a key of the copy's default workspace
            assert http.get("/v1/queues/later/stats").json()["delayed"] == copied
    finally:
        restored.kill()


@pytest.mark.sqlite_only
def test_a_backup_never_overwrites_a_file_and_needs_a_database(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path / "data").start()
    server.kill()
    existing = tmp_path / "taken.db"
    existing.write_bytes(b"keep me")

    refused = backup(server.data_dir, existing)
    assert refused.returncode != 0 and "exists" in refused.stderr and existing.read_bytes() == b"keep me"

    missing = backup(tmp_path / "no-data-here", tmp_path / "new.db")
    assert missing.returncode != 0 and "no database" in missing.stderr
    assert not (tmp_path / "new.db").exists() and not (tmp_path / "no-data-here").exists()


@pytest.mark.postgres_only
def test_on_postgresql_the_backup_refuses_and_points_at_pg_dump(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path / "data").start()
    try:
        refused = subprocess.run(
            [sys.executable, "-m", "rotor_lite", "admin", "backup", "--to", str(tmp_path / "copy.db"),
             "--data-dir", str(server.data_dir)],
            capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **storage_env(server.data_dir, None)},
        )
    finally:
        server.kill()
    assert refused.returncode != 0 and "pg_dump" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "copy.db").exists()
