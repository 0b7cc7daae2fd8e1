"""Log lines: the text and JSON formatters, and the sweeper's line per stalled job."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from rotor_lite.engine.sweeper import Sweeper
from rotor_lite.logs import JsonFormatter, TextFormatter
from tests.unit.core.test_dispatcher import open_core


def record(message: str, exc: bool = False, **fields: object) -> logging.LogRecord:
    made = logging.makeLogRecord({"name": "rotor_lite.test", "levelname": "WARNING", "msg": message,
                                  "created": 1779271200.123, "msecs": 123.0, **fields})
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            made.exc_info = sys.exc_info()
    return made


def test_text_lines_quote_values_that_need_it_and_leave_out_none() -> None:
    line = TextFormatter().format(record("job attempt failed", job_id="job_1", error='HTTP 500: "no"\nmore',
                                         status=500, workspace=None))

    assert line == ('2026-05-20T10:00:00.123Z WARNING rotor_lite.test: job attempt failed job_id=job_1 '
                    'error="HTTP 500: \\"no\\"\\nmore" status=500')


def test_json_lines_hold_every_field_and_the_exception() -> None:
    line = JsonFormatter().format(record("sweep failed", exc=True, count=2, path=Path("/data"), workspace=None))

    entry = json.loads(line)
    assert "\n" not in line
    assert {k: entry[k] for k in ("time", "level", "logger", "message", "count", "path", "workspace")} == {
        "time": "2026-05-20T10:00:00.123Z", "level": "WARNING", "logger": "rotor_lite.test",
        "message": "sweep failed", "count": 2, "path": "/data", "workspace": None,
    }
    assert entry["exception"].startswith("Traceback") and "ValueError: boom" in entry["exception"]


async def test_the_sweeper_logs_each_stalled_job(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with open_core(tmp_path, concurrency=1) as (core, queue):
        await core.db.write(lambda conn: conn.execute(
            "INSERT INTO job (id, queue_id, workspace_id, state, payload, max_attempts, run_at, created_at,"
            " lease_owner, lease_expires_at) VALUES ('job_hung', ?, ?, 'active', CAST('{}' AS BLOB), 3, 0, 0, 'gone', 1)",
            (queue.rowid, queue.workspace_id),
        ))
        with caplog.at_level(logging.INFO, logger="rotor_lite.sweeper"):
            await Sweeper(core, lambda: None).sweep()

    [stalled] = [r for r in caplog.records if r.name == "rotor_lite.sweeper"]
    assert stalled.levelno == logging.WARNING and stalled.getMessage().startswith("job stalled")
    assert (stalled.job_id, stalled.queue, stalled.workspace) == ("job_hung", "q", queue.workspace_id)  # type: ignore[attr-defined]
