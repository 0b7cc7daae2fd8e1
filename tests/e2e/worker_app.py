"""Processors the end-to-end tests run in real `rotor worker` processes (`tests.e2e.worker_app:handle`).

Every processor appends what it did, one JSON line per event, to the file `$WORKER_LOG` (several
worker processes share it; each line is one `write` of an `O_APPEND` file, so lines never interleave).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from typing import Any

from rotor_lite.sdk import NonRetriableError
from rotor_lite.sdk.worker import Job


def record(event: str, job: Job, **fields: Any) -> None:
    line = json.dumps({"event": event, "id": job.id, "attempt": job.attempt, "pid": os.getpid(), "at": time.time(),
                       "data": job.data, **fields})
    fd = os.open(os.environ["WORKER_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


async def handle(job: Job) -> Any:
    """Does what the payload says: `sleep` seconds, `fail` (until attempt `until`), `fatal`; else echoes."""
    data = job.data if isinstance(job.data, dict) else {}
    record("start", job)
    try:
        await asyncio.sleep(float(data.get("sleep", 0)))
        if "fail" in data and job.attempt < int(data.get("until", 1_000)):
            raise RuntimeError(data["fail"])
        if data.get("fatal"):
            raise NonRetriableError("no point retrying")
    except asyncio.CancelledError:
        record("cancelled", job)
        raise
    record("done", job)
    return {"echo": data, "attempt": job.attempt, "tags": job.tags}


def sync_handle(job: Job) -> Any:
    """A plain function: the worker runs it in a thread."""
    record("start", job)
    time.sleep(float(job.data.get("sleep", 0)))
    record("done", job)
    return {"sync": True}


async def idempotent_outreach(job: Job) -> Any:
    """The reference's idempotent handler pattern in Python: check for this job's row before the side
    effect, write it after. On its first run it then hangs (as a worker that died before completing),
    so a redelivery must find the row and skip the send."""
    lead_id = job.data["leadId"]
    with sqlite3.connect(os.environ["OUTREACH_DB"]) as db:
        db.execute("CREATE TABLE IF NOT EXISTS outreach (rotor_job_id TEXT PRIMARY KEY, lead_id TEXT, sent_at REAL)")
        if db.execute("SELECT 1 FROM outreach WHERE rotor_job_id = ?", (job.id,)).fetchone():
            record("skipped", job)
            return {"skipped": True, "reason": "already-sent"}
        record("sent", job)  # sendEmail(leadId)
        db.execute("INSERT OR IGNORE INTO outreach VALUES (?, ?, ?)", (job.id, lead_id, time.time()))
    if job.data.get("hang_first"):
        record("hanging", job)
        await asyncio.sleep(3600)
    return {"sent": True}
