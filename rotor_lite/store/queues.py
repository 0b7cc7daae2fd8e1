"""Queue rows."""

from __future__ import annotations

from typing import Any

import msgspec

from rotor_lite.models import BackoffType, Queue, QueueState, RateLimit
from rotor_lite.store import counts
from rotor_lite.store.contract import Conn

_COLUMNS = (
    "rowid, workspace_id, name, concurrency, max_attempts, backoff_type, backoff_delay_ms, callback_url,"
    " callback_headers, callback_secret, approval_required, timeout_ms, state, created_at, updated_at,"
    " fairness_key, rate_limit_key, rate_limit_max, rate_limit_per_ms"
)


class QueueRow(msgspec.Struct, kw_only=True):
    """A queue row with its callback secret still encrypted."""

    queue: Queue
    secret_blob: bytes | None


def _from_row(row: Any) -> QueueRow:
    queue = Queue(
        rowid=row[0], workspace_id=row[1], name=row[2], concurrency=row[3], max_attempts=row[4],
        backoff_type=BackoffType(row[5]), backoff_delay_ms=row[6], callback_url=row[7],
        callback_headers=msgspec.json.decode(row[8]), callback_secret=None,
        approval_required=bool(row[10]), timeout_ms=row[11], state=QueueState(row[12]),
        created_at=row[13], updated_at=row[14], fairness_key=row[15],
        rate_limit=None if row[16] is None else RateLimit(key=row[16], max=row[17], per_ms=row[18]),
    )
    return QueueRow(queue=queue, secret_blob=None if row[9] is None else bytes(row[9]))


def insert_queue(conn: Conn, queue: Queue, secret_blob: bytes | None) -> int:
    row = conn.execute(
        "INSERT INTO queue (workspace_id, name, concurrency, max_attempts, backoff_type, backoff_delay_ms,"
        " callback_url, callback_headers, callback_secret, approval_required, timeout_ms, state, created_at, updated_at,"
        " fairness_key, rate_limit_key, rate_limit_max, rate_limit_per_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING rowid",
        (
            queue.workspace_id, queue.name, queue.concurrency, queue.max_attempts, queue.backoff_type,
            queue.backoff_delay_ms, queue.callback_url, msgspec.json.encode(queue.callback_headers).decode(),
            secret_blob, int(queue.approval_required), queue.timeout_ms, queue.state, queue.created_at,
            queue.updated_at, *_grouping(queue),
        ),
    ).fetchone()
    return int(row[0])  # RETURNING: PostgreSQL has no lastrowid


def update_queue(conn: Conn, queue: Queue, secret_blob: bytes | None) -> None:
    conn.execute(
        "UPDATE queue SET concurrency = ?, max_attempts = ?, backoff_type = ?, backoff_delay_ms = ?,"
        " callback_url = ?, callback_headers = ?, callback_secret = ?, approval_required = ?, timeout_ms = ?,"
        " state = ?, updated_at = ?, fairness_key = ?, rate_limit_key = ?, rate_limit_max = ?, rate_limit_per_ms = ?"
        " WHERE rowid = ?",
        (
            queue.concurrency, queue.max_attempts, queue.backoff_type, queue.backoff_delay_ms, queue.callback_url,
            msgspec.json.encode(queue.callback_headers).decode(), secret_blob, int(queue.approval_required),
            queue.timeout_ms, queue.state, queue.updated_at, *_grouping(queue), queue.rowid,
        ),
    )


def _grouping(queue: Queue) -> tuple[str | None, str | None, int | None, int | None]:
    """The fairness and rate-limit columns of a queue."""
    limit = queue.rate_limit
    return queue.fairness_key, *((limit.key, limit.max, limit.per_ms) if limit else (None, None, None))


def delete_queue(conn: Conn, queue_rowid: int) -> None:
    """Delete a queue with its jobs, their tags, attempts and locks."""
    conn.execute("DELETE FROM job_tag WHERE queue_id = ?", (queue_rowid,))
    conn.execute(
        "DELETE FROM job_attempt WHERE job_rowid IN (SELECT rowid FROM job WHERE queue_id = ?)", (queue_rowid,)
    )
    conn.execute(
        "DELETE FROM concurrency_lock WHERE job_rowid IN (SELECT rowid FROM job WHERE queue_id = ?)", (queue_rowid,)
    )
    conn.execute("DELETE FROM job WHERE queue_id = ?", (queue_rowid,))
    counts.forget_queue(conn, queue_rowid)
    conn.execute("DELETE FROM queue WHERE rowid = ?", (queue_rowid,))


def all_queues(conn: Conn) -> list[QueueRow]:
    return [_from_row(row) for row in conn.execute(f"SELECT {_COLUMNS} FROM queue ORDER BY rowid")]


def set_callback_secret_blob(conn: Conn, queue_rowid: int, secret_blob: bytes) -> None:
    """Replace a queue's encrypted callback secret (master-key rotation)."""
    conn.execute("UPDATE queue SET callback_secret = ? WHERE rowid = ?", (secret_blob, queue_rowid))
