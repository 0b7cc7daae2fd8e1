"""Job rows: insert, claim (`acquire_jobs`), outcomes, leases and the read queries.

Functions taking a `Conn` run inside the writer's transaction
(`Database.write`); functions taking a `Database` read through the reader.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from operator import attrgetter
from typing import Any, Protocol

import msgspec

from rotor_lite.models import Attempt, Claimed, Job, JobState, Settlement
from rotor_lite.store import counts
from rotor_lite.store.db import Database
from rotor_lite.store.contract import Conn, SQLITE_LIMIT_VARIABLE_NUMBER, is_postgres

_JOB_COLUMNS = (
    "rowid, id, queue_id, workspace_id, state, payload, tags, concurrency_key, priority, attempts, max_attempts,"
    " run_at, created_at, started_at, finished_at, fail_reason, result, blocked_by, block_reason, approval_id,"
    " schedule_id, stalled, group_key"
)
_lease_sequence = itertools.count(1)
WORKER_LEASES = "pull-"  # how the lease owners of pull workers' claims begin


def job_from_row(row: Sequence[Any], queue_name: str) -> Job:
    return Job(
        rowid=row[0], id=row[1], queue_id=row[2], queue_name=queue_name, workspace_id=row[3],
        state=JobState(row[4]), payload=bytes(row[5]), tags=msgspec.json.decode(row[6]) if row[6] else [],
        concurrency_key=row[7], priority=row[8], attempts=row[9], max_attempts=row[10], run_at=row[11],
        created_at=row[12], started_at=row[13], finished_at=row[14], fail_reason=row[15],
        result=None if row[16] is None else bytes(row[16]), blocked_by=row[17], block_reason=row[18],
        approval_id=row[19], schedule_id=row[20], stalled=row[21], group_key=row[22],
    )


# Enqueue ----------------------------------------------------------------------


def _json(rows: Iterable[Any]) -> str:
    """Rows as one JSON array: how a statement takes a whole group of values in one parameter."""
    return msgspec.json.encode(list(rows)).decode()


def find_existing(conn: Conn, queue_rowid: int, job_ids: Iterable[str]) -> dict[str, Sequence[Any]]:
    """Existing rows of this queue among `job_ids`, keyed by id (one statement, as for inserts below)."""
    rows = conn.execute(
        f"SELECT {_JOB_COLUMNS} FROM job WHERE queue_id = ? AND id IN (SELECT value FROM json_each(?))",
        (queue_rowid, _json(job_ids)),
    ).fetchall()
    return {row[1]: row for row in rows}


# One statement for a whole batch: sqlite3 gives up the GIL at every step of executemany,
# and a busy event loop then keeps the writer waiting up to the switch interval per row.
# Plain VALUES rows: SQLite 3.40's `json_each` re-parses each row's JSON per column read.
_INSERT_COLUMNS = (
    "id, queue_id, workspace_id, state, payload, tags, concurrency_key, priority, max_attempts, run_at, created_at,"
    " schedule_id, group_key"
)
_PARAMS_PER_ROW = 13
_STATE = attrgetter("state")
_INSERT_TAGS = (
    "INSERT OR IGNORE INTO job_tag (queue_id, tag, job_rowid) SELECT ?1, t.value ->> 1, job.rowid"
    " FROM json_each(?2) AS t JOIN job ON job.queue_id = ?1 AND job.id = t.value ->> 0"
)


@lru_cache(maxsize=64)
def _insert_sql(rows: int) -> str:
    """The INSERT of `rows` jobs (sqlite3 keeps one prepared statement per text)."""
    return f"INSERT INTO job ({_INSERT_COLUMNS}) VALUES " + ",".join(["(?,?,?,?,?,?,?,?,?,?,?,?,?)"] * rows)


def insert_jobs(conn: Conn, queue_rowid: int, jobs: Sequence[Job]) -> None:
    """Insert new jobs of one queue, in the state each one carries (and count them)."""
    per_statement = conn.getlimit(SQLITE_LIMIT_VARIABLE_NUMBER) // _PARAMS_PER_ROW
    for start in range(0, len(jobs), per_statement):
        chunk = jobs[start:start + per_statement]
        params: list[Any] = []
        for job in chunk:
            params += (
                job.id, queue_rowid, job.workspace_id, job.state, job.payload,
                _json(job.tags) if job.tags else None, job.concurrency_key, job.priority,
                job.max_attempts, job.run_at, job.created_at, job.schedule_id, job.group_key,
            )
        conn.execute(_insert_sql(len(chunk)), params)
    tags = [(job.id, tag) for job in jobs for tag in job.tags]
    if tags:
        conn.execute(_INSERT_TAGS, (queue_rowid, _json(tags)))
    counts.shift(conn, {(queue_rowid, state): n for state, n in Counter(map(_STATE, jobs)).items()})


def add_usage(conn: Conn, workspace_id: str, period: str, queue_name: str, accepted: int) -> None:
    conn.execute(
        "INSERT INTO usage (workspace_id, period, queue_name, accepted) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (workspace_id, period, queue_name) DO UPDATE SET accepted = usage.accepted + excluded.accepted",
        (workspace_id, period, queue_name, accepted),
    )


def usage_total(conn: Conn, workspace_id: str, period: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(accepted), 0) FROM usage WHERE workspace_id = ? AND period = ?", (workspace_id, period)
    ).fetchone()
    return int(row[0])


async def usage_by_queue(db: Database, workspace_id: str, period: str) -> dict[str, int]:
    rows = await db.fetchall(
        "SELECT queue_name, accepted FROM usage WHERE workspace_id = ? AND period = ?", (workspace_id, period)
    )
    return {row[0]: row[1] for row in rows}


# Claim and outcome --------------------------------------------------------------


# `+queue_id`: grouping by the bare column makes the planner walk the whole job_queue_state index
# instead of the few due rows of the job_delayed partial index.
_DUE_PER_QUEUE = (
    "SELECT json_group_array(json_array(queue_id, n)) FROM"
    " (SELECT queue_id, count(*) AS n FROM job WHERE state = 'delayed' AND run_at <= ? GROUP BY +queue_id)"
)


_PROMOTE_PG = "UPDATE job SET state = 'waiting' WHERE state = 'delayed' AND run_at <= ? RETURNING queue_id"


def promote_due(conn: Conn, now: int) -> None:
    """Delayed jobs whose time has come become waiting."""
    if is_postgres(conn):  # another node may promote the same rows: count what this statement changed
        rows = conn.execute(_PROMOTE_PG, (now,)).fetchall()
        counts.shift(conn, _moved_per_queue(Counter(row[0] for row in rows).items(), JobState.DELAYED, JobState.WAITING))
        return
    due = _json_rows(conn, _DUE_PER_QUEUE, (now,), list[tuple[int, int]])
    if due:  # the count comes first: an UPDATE's RETURNING would hand the GIL over once per row
        conn.execute("UPDATE job SET state = 'waiting' WHERE state = 'delayed' AND run_at <= ?", (now,))
        counts.shift(conn, _moved_per_queue(due, JobState.DELAYED, JobState.WAITING))


def _moved_per_queue(moved: Iterable[tuple[int, int]], source: str, target: str) -> dict[tuple[int, str], int]:
    """The counter changes of (queue rowid, jobs) that went from `source` to `target`."""
    changes: Counter[tuple[int, str]] = Counter()
    for queue_id, n in moved:
        changes[(queue_id, source)] -= n
        changes[(queue_id, target)] += n
    return changes


def has_waiting(conn: Conn, queue_rowid: int) -> bool:
    """True while the queue has a waiting job (served by `job_queue_state`: grouped jobs are not in `job_waiting`)."""
    return conn.execute("SELECT 1 FROM job WHERE queue_id = ? AND state = 'waiting' LIMIT 1", (queue_rowid,)).fetchone() is not None


def next_delayed_at(conn: Conn) -> int | None:
    row = conn.execute("SELECT min(run_at) FROM job WHERE state = 'delayed'").fetchone()
    return None if row[0] is None else int(row[0])


# A claim reads its jobs as one JSON row and leases them with one UPDATE: every statement (and every row
# fetched) gives the GIL away, and winning it back from a busy event loop can take a whole switch interval.
_WAITING_AS_JSON = (
    "SELECT json_group_array(json_array(rowid, id, hex(payload), attempts, max_attempts, concurrency_key,"
    " schedule_id)) FROM (SELECT rowid, id, payload, attempts, max_attempts, concurrency_key, schedule_id FROM job"
    " WHERE queue_id = ? AND state = 'waiting' AND group_key IS NULL ORDER BY priority, run_at LIMIT ?)"
)
_WaitingRow = tuple[int, str, str, int, int, str | None, str | None]
_FairRow = tuple[int, str, str, int, int, str | None, str | None, str]  # a waiting row and its group key


class Turns(Protocol):
    """What a fair claim needs of its queue's groups: whose turn comes next, and how many jobs each may start.

    The caller keeps it between claims (the store only reads and advances it).
    """

    after: str | None  # the group served last: the next claim starts with the group after it

    def skipped(self) -> Sequence[str]:
        """Groups that may start no job now (their rate is used up)."""

    def allowance(self, group: str) -> int:
        """How many jobs of `group` may start now (at least 1 for a group not skipped)."""

    def took(self, group: str, count: int) -> None:
        """`count` jobs of `group` just started."""


def acquire_jobs(
    conn: Conn, *, queue_rowid: int, workspace_id: str, limit: int, owner: str,
    lease_ms: int, now: int, key_recheck_ms: int, key_ttl_ms: int, turns: Turns | None = None,
) -> list[Claimed]:
    """Lease up to `limit` waiting jobs of a queue: waiting → active.

    In priority order; with `turns` (a queue with a group key), one job per group in turn (see `_fair_rows`).
    The jobs of one claim share its lease token (unique per claim); an outcome matches token and rowid.
    A job whose concurrency key is held by another live job goes waiting → delayed
    (re-checked after `key_recheck_ms`) without using an attempt.
    """
    token = f"{owner}:{next(_lease_sequence)}"
    postgres = is_postgres(conn)
    if postgres:
        limit = min(limit, _free_in_queue(conn, queue_rowid))
    claimed: list[Claimed] = []
    delayed = 0
    while len(claimed) < limit:
        wanted = limit - len(claimed)
        fair = None if turns is None else _fair_rows(conn, queue_rowid, wanted, turns)
        if postgres and fair:
            fair = _locked(conn, fair)
        rows: Sequence[_WaitingRow | _FairRow] = _waiting_rows(conn, queue_rowid, wanted) if fair is None else fair
        ready = [row for row in rows if row[5] is None or _key_taken(conn, workspace_id, row, now, key_recheck_ms, key_ttl_ms)]
        delayed += len(rows) - len(ready)
        if ready:
            leased = conn.execute(
                _LEASE_PG if postgres else _LEASE, (now, token, now + lease_ms, _json(row[0] for row in ready)),
            ).fetchall()
            if postgres:  # the rows are locked by this claim; only a state changed meanwhile drops one
                taken = {row[0] for row in leased}
                ready = [row for row in ready if row[0] in taken]
        claimed += [_claimed(row, queue_rowid, token) for row in ready]
        if turns is not None and fair:
            _took_turns(turns, fair, {row[0] for row in ready})
        # A plain claim that got fewer rows than it asked for emptied the queue; a fair one may have taken
        # fewer from some groups than it offered others, so it asks again until a round finds nothing.
        if not rows or (fair is None and len(rows) < wanted):
            break
    counts.shift(conn, {
        (queue_rowid, JobState.WAITING): -len(claimed) - delayed, (queue_rowid, JobState.ACTIVE): len(claimed),
        (queue_rowid, JobState.DELAYED): delayed,
    })
    return claimed


_LEASE = (
    "UPDATE job SET state = 'active', started_at = ?, lease_owner = ?, lease_expires_at = ?"
    " WHERE rowid IN (SELECT value FROM json_each(?))"
)
# PostgreSQL, several nodes: the state is checked again on the row as it is now, and the rows taken come back.
_LEASE_PG = _LEASE + " AND state = 'waiting' RETURNING rowid"
# The queue's row lock serialises the claims of one queue across nodes: the active jobs counted under it
# are every node's, and the state read is the queue's as of now (paused on another node, it takes nothing).
_QUEUE_FOR_CLAIM_PG = "SELECT state, concurrency FROM queue WHERE rowid = ? FOR UPDATE"
_ACTIVE_PG = "SELECT count(*) FROM job WHERE queue_id = ? AND state = 'active'"


def _free_in_queue(conn: Conn, queue_rowid: int) -> int:
    """How many more jobs the queue may run, over every node (PostgreSQL), holding its row until commit."""
    row = conn.execute(_QUEUE_FOR_CLAIM_PG, (queue_rowid,)).fetchone()
    if row is None:  # no queue row to count against (the store's own tests): the caller's limit stands
        return 2**31
    if row[0] != "active":
        return 0
    return max(0, int(row[1]) - int(conn.execute(_ACTIVE_PG, (queue_rowid,)).fetchone()[0]))


_WAITING_PG = (
    "SELECT rowid, id, encode(payload, 'hex'), attempts, max_attempts, concurrency_key, schedule_id FROM job"
    " WHERE queue_id = ? AND state = 'waiting' AND group_key IS NULL ORDER BY priority, run_at LIMIT ?"
    " FOR UPDATE SKIP LOCKED"
)


def _waiting_rows(conn: Conn, queue_rowid: int, limit: int) -> list[_WaitingRow]:
    if is_postgres(conn):
        return [tuple(row) for row in conn.execute(_WAITING_PG, (queue_rowid, limit)).fetchall()]
    text = conn.execute(_WAITING_AS_JSON, (queue_rowid, limit)).fetchone()[0]
    return msgspec.json.decode(text, type=list[_WaitingRow])


# Fair claims ----------------------------------------------------------------------------------------
#
# `job_fair` orders a queue's waiting jobs by (group key, priority, run_at), so the first entry after a
# group key is the next group's first job: one seek finds both. A walk makes those seeks in one recursive
# statement, starting after the group served last and wrapping around to the first, and so visits the
# groups in turn without ever reading more than one row of a group, however long its backlog.
_FAIR_COLUMNS = (
    "json_array(j.rowid, j.id, hex(j.payload), j.attempts, j.max_attempts, j.concurrency_key, j.schedule_id,"
    " j.group_key)"
)
_NEXT_HEAD = (
    "SELECT {} FROM job WHERE queue_id = ?1 AND state = 'waiting' AND group_key {} {}"
    " ORDER BY group_key, priority, run_at LIMIT 1"
)
_HEADS = (
    f"SELECT json_group_array({_FAIR_COLUMNS}) FROM (SELECT j.* FROM json_each(?2) AS k CROSS JOIN job AS j ON j.rowid IN"
    " (SELECT rowid FROM job WHERE queue_id = ?1 AND state = 'waiting' AND group_key = k.value"
    " ORDER BY priority, run_at LIMIT ?3) ORDER BY k.key, j.priority, j.run_at) AS j"
)


@lru_cache(maxsize=4)
def _walk_sql(from_start: bool, skipping: bool) -> str:
    """The first jobs of up to ?3 groups, walking from the group after ?2 (`from_start`: at or after ?2)
    and leaving out the ?5 groups of the JSON array ?4 (walked over, never returned)."""
    # Each step reads the next head's rowid and group key from the index alone (two covering seeks are
    # cheaper than one seek and a lookup of the group key in the table).
    first = ", ".join(f"({_NEXT_HEAD.format(column, '>=' if from_start else '>', '?2')})" for column in ("rowid", "group_key"))
    step = ", ".join(f"({_NEXT_HEAD.format(column, '>', 'walk.gk')})" for column in ("rowid", "group_key"))
    skip = " WHERE j.group_key NOT IN (SELECT value FROM json_each(?4))" if skipping else ""
    return (
        f"WITH RECURSIVE walk(rid, gk) AS (SELECT {first} UNION ALL SELECT {step} FROM walk"
        f" WHERE walk.rid IS NOT NULL LIMIT ?3 + ?5) SELECT json_group_array({_FAIR_COLUMNS})"
        f" FROM (SELECT j.* FROM walk CROSS JOIN job AS j ON j.rowid = walk.rid{skip} LIMIT ?3) AS j"
    )


_FAIR_COLUMNS_PG = (
    "j.rowid, j.id, encode(j.payload, 'hex'), j.attempts, j.max_attempts, j.concurrency_key, j.schedule_id, j.group_key"
)
_HEADS_PG = (
    f"SELECT {_FAIR_COLUMNS_PG} FROM json_array_elements_text(?2::json) WITH ORDINALITY AS k(gk, ord)"
    " CROSS JOIN LATERAL (SELECT * FROM job WHERE queue_id = ?1 AND state = 'waiting' AND group_key = k.gk"
    " ORDER BY priority, run_at LIMIT ?3) AS j ORDER BY k.ord, j.priority, j.run_at"
)


@lru_cache(maxsize=4)
def _walk_sql_pg(from_start: bool) -> str:
    """`_walk_sql` as PostgreSQL runs it: rows instead of one JSON value, a step counter instead of the
    LIMIT PostgreSQL does not take in a recursive query, and always the skip list (every parameter must
    be used; an empty list skips none)."""
    first = ", ".join(f"({_NEXT_HEAD.format(column, '>=' if from_start else '>', '?2')})" for column in ("rowid", "group_key"))
    step = ", ".join(f"({_NEXT_HEAD.format(column, '>', 'walk.gk')})" for column in ("rowid", "group_key"))
    skip = " WHERE j.group_key NOT IN (SELECT value FROM json_each(?4))"
    return (
        f"WITH RECURSIVE walk(rid, gk, n) AS (SELECT {first}, 1 UNION ALL SELECT {step}, walk.n + 1 FROM walk"
        " WHERE walk.rid IS NOT NULL AND walk.n < CAST(?3 AS BIGINT) + CAST(?5 AS BIGINT))"
        f" SELECT {_FAIR_COLUMNS_PG} FROM walk JOIN job AS j ON j.rowid = walk.rid{skip} ORDER BY walk.n LIMIT ?3"
    )


def _locked(conn: Conn, rows: list[_FairRow]) -> list[_FairRow]:
    """The rows still waiting, locked for this claim (PostgreSQL: a walk's statement cannot lock them itself)."""
    found = conn.execute(
        "SELECT rowid FROM job WHERE rowid IN (SELECT value FROM json_each(?)) AND state = 'waiting'"
        " FOR UPDATE SKIP LOCKED", (_json(row[0] for row in rows),),
    ).fetchall()
    kept = {row[0] for row in found}
    return [row for row in rows if row[0] in kept]


def _fair_rows(conn: Conn, queue_rowid: int, limit: int, turns: Turns) -> list[_FairRow]:
    """Up to `limit` waiting jobs, one per group in turn after `turns.after`, each group's first.

    When fewer groups than `limit` have waiting jobs, each gives an equal share of the jobs, and every
    group gives no more than its allowance.
    """
    skipped = list(turns.skipped())
    heads = _walk(conn, queue_rowid, turns.after, limit, skipped)
    if len(heads) < limit and turns.after is not None:  # every group after the last served: wrap around
        after = turns.after
        heads += [row for row in _walk(conn, queue_rowid, None, limit - len(heads), skipped) if row[7] <= after]
    if len(heads) in (0, limit):
        return heads
    share = -(-limit // len(heads))
    params = (queue_rowid, _json(row[7] for row in heads), share)
    if is_postgres(conn):
        rows: list[_FairRow] = [tuple(row) for row in conn.execute(_HEADS_PG, params).fetchall()]
    else:
        rows = msgspec.json.decode(conn.execute(_HEADS, params).fetchone()[0], type=list[_FairRow])
    return _within_allowance(_in_turn(rows), turns, limit)


def _walk(conn: Conn, queue_rowid: int, after: str | None, limit: int, skipped: list[str]) -> list[_FairRow]:
    params = (queue_rowid, "" if after is None else after, limit, _json(skipped), len(skipped))
    if is_postgres(conn):
        found = conn.execute(_walk_sql_pg(after is None), params).fetchall()
        return [tuple(row) for row in found]
    sql = _walk_sql(after is None, bool(skipped))
    return msgspec.json.decode(conn.execute(sql, params).fetchone()[0], type=list[_FairRow])


def _in_turn(rows: list[_FairRow]) -> list[_FairRow]:
    """Rows grouped by group (in walk order) → the first of each group, then the second of each, …"""
    groups: dict[str, list[_FairRow]] = {}
    for row in rows:
        groups.setdefault(row[7], []).append(row)
    return [row for round_ in itertools.zip_longest(*groups.values()) for row in round_ if row is not None]


def _within_allowance(rows: list[_FairRow], turns: Turns, limit: int) -> list[_FairRow]:
    left: dict[str, int] = {}
    kept: list[_FairRow] = []
    for row in rows:
        group = row[7]
        if group not in left:
            left[group] = turns.allowance(group)
        if left[group] > 0 and len(kept) < limit:
            left[group] -= 1
            kept.append(row)
    return kept


def _took_turns(turns: Turns, rows: list[_FairRow], started: set[int]) -> None:
    """Count the jobs each group started; the turn moves to the last group this round visited."""
    for group, count in Counter(row[7] for row in rows if row[0] in started).items():
        turns.took(group, count)
    turns.after = list(dict.fromkeys(row[7] for row in rows))[-1]  # rows keep the walk's order of groups


def _claimed(row: _WaitingRow | _FairRow, queue_rowid: int, token: str) -> Claimed:
    rowid, job_id, payload, attempts, max_attempts, key, schedule_id = row[:7]
    return Claimed(
        rowid=rowid, id=job_id, queue_id=queue_rowid, payload=bytes.fromhex(payload), attempt=attempts + 1,
        max_attempts=max_attempts, lease_token=token, concurrency_key=key, schedule_id=schedule_id,
    )


def _key_taken(
    conn: Conn, workspace_id: str, row: _WaitingRow | _FairRow, now: int, recheck_ms: int, ttl_ms: int
) -> bool:
    """Take the job's concurrency key, or put the job back to delayed until `recheck_ms` from now."""
    rowid, key = row[0], row[5]
    assert key is not None
    if _take_key(conn, workspace_id, key, rowid, now, ttl_ms):
        return True
    conn.execute("UPDATE job SET state = 'delayed', run_at = ? WHERE rowid = ?", (now + recheck_ms, rowid))
    return False


# One statement compares and sets: another node taking the same key at once either waits for this
# row and then finds it held, or holds it first (a separate SELECT would let both take it).
_TAKE_KEY = (
    "INSERT INTO concurrency_lock (workspace_id, key, job_rowid, expires_at) VALUES (?1, ?2, ?3, ?4)"
    " ON CONFLICT (workspace_id, key) DO UPDATE SET job_rowid = excluded.job_rowid, expires_at = excluded.expires_at"
    " WHERE concurrency_lock.expires_at <= ?5 OR concurrency_lock.job_rowid = excluded.job_rowid RETURNING 1"
)


def _take_key(conn: Conn, workspace_id: str, key: str, rowid: int, now: int, ttl_ms: int) -> bool:
    return conn.execute(_TAKE_KEY, (workspace_id, key, rowid, now + ttl_ms, now)).fetchone() is not None


def _release_keys(conn: Conn, rowids: Sequence[int]) -> None:
    conn.execute("DELETE FROM concurrency_lock WHERE job_rowid IN (SELECT value FROM json_each(?))", (_json(rowids),))


# Set-based outcomes: a few statements for a whole group of deliveries (see _WAITING_AS_JSON for why).
_HELD = (
    "SELECT json_group_array(lease.key) FROM json_each(?) AS lease CROSS JOIN job"
    " ON job.rowid = lease.value ->> 0 AND job.lease_owner = lease.value ->> 1 WHERE job.state = 'active'"
)
_SETTLE = (
    "UPDATE job SET state = s.value ->> 1, attempts = s.value ->> 2, finished_at = coalesce(s.value ->> 3, finished_at),"
    " run_at = coalesce(s.value ->> 4, run_at), fail_reason = s.value ->> 5,"
    " result = CASE WHEN s.value ->> 1 = 'completed' THEN CAST(s.value ->> 6 AS BLOB) ELSE result END,"
    " lease_owner = NULL, lease_expires_at = NULL FROM json_each(?) AS s WHERE job.rowid = s.value ->> 0"
)
# PostgreSQL, several nodes: the UPDATE itself checks that the lease still holds the job (another node may
# have reaped and claimed it since), and what it changed is what was settled.
_SETTLE_PG = (
    "UPDATE job SET state = s.value ->> 1, attempts = CAST(s.value ->> 2 AS BIGINT),"
    " finished_at = coalesce(CAST(s.value ->> 3 AS BIGINT), finished_at),"
    " run_at = coalesce(CAST(s.value ->> 4 AS BIGINT), run_at), fail_reason = s.value ->> 5,"
    " result = CASE WHEN s.value ->> 1 = 'completed' THEN convert_to(s.value ->> 6, 'UTF8') ELSE result END,"
    " lease_owner = NULL, lease_expires_at = NULL FROM json_each(?) AS s"
    " WHERE job.rowid = CAST(s.value ->> 0 AS BIGINT) AND job.lease_owner = s.value ->> 7 AND job.state = 'active'"
    " RETURNING job.rowid"
)
_RECORD_ATTEMPTS_PG = (
    "INSERT INTO job_attempt (job_rowid, attempt, at, duration_ms, status, outcome, error)"
    " SELECT CAST(a.value ->> 0 AS BIGINT), CAST(a.value ->> 1 AS BIGINT), CAST(a.value ->> 2 AS BIGINT),"
    " CAST(a.value ->> 3 AS BIGINT), CAST(a.value ->> 4 AS BIGINT), a.value ->> 5, a.value ->> 6 FROM json_each(?) AS a"
)
_RECORD_ATTEMPTS = (
    "INSERT INTO job_attempt (job_rowid, attempt, at, duration_ms, status, outcome, error)"
    " SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6"
    " FROM json_each(?)"
)


def settle_jobs(conn: Conn, settlements: Sequence[Settlement]) -> list[Settlement]:
    """Apply delivery outcomes whose lease still holds the job; returns those (the others changed nothing).

    active → completed, → failed (no attempt left), or → delayed/waiting until `retry_at`.
    """
    if not settlements:
        return []
    if is_postgres(conn):
        rows = _json((*_settle_row(s), s.claimed.lease_token) for s in settlements)
        settled = {row[0] for row in conn.execute(_SETTLE_PG, (rows,)).fetchall()}
        held = [s for s in settlements if s.claimed.rowid in settled]
    else:
        leases = [(s.claimed.rowid, s.claimed.lease_token) for s in settlements]
        held = [settlements[i] for i in _json_rows(conn, _HELD, (_json(leases),), list[int])]
    if not held:
        return []
    if not is_postgres(conn):
        conn.execute(_SETTLE, (_json(_settle_row(s) for s in held),))
    record = _RECORD_ATTEMPTS_PG if is_postgres(conn) else _RECORD_ATTEMPTS
    conn.execute(record, (_json(_attempt_row(s.claimed.rowid, s.attempt) for s in held),))
    keyed = [s.claimed.rowid for s in held if s.claimed.concurrency_key is not None]
    if keyed:
        _release_keys(conn, keyed)
    changes: Counter[tuple[int, str]] = Counter((s.claimed.queue_id, s.state) for s in held)
    for queue_id, n in Counter(s.claimed.queue_id for s in held).items():
        changes[(queue_id, JobState.ACTIVE)] -= n
    counts.shift(conn, changes)
    return held


def _settle_row(s: Settlement) -> tuple[Any, ...]:
    terminal = s.state in (JobState.COMPLETED, JobState.FAILED)
    # Results are UTF-8 JSON by construction (the deliverer keeps text as a JSON string); "replace" keeps
    # a stray invalid byte from failing the whole group.
    result = None if s.result is None else s.result.decode("utf-8", "replace")
    return (
        s.claimed.rowid, s.state, s.claimed.attempt, s.at if terminal else None,
        None if terminal else s.retry_at, None if s.state == JobState.COMPLETED else s.reason, result,
    )


def _attempt_row(rowid: int, a: Attempt) -> tuple[Any, ...]:
    return (rowid, a.attempt, a.at, a.duration_ms, a.status, a.outcome, a.error)


def _json_rows(conn: Conn, sql: str, params: tuple[Any, ...], type_: Any) -> Any:
    """Run a one-row, one-column query that returns JSON, returning it decoded."""
    return msgspec.json.decode(conn.execute(sql, params).fetchone()[0], type=type_)


def reap_expired(conn: Conn, now: int) -> list[tuple[str, int]]:
    """Active jobs whose lease ran out go back to waiting, counted as stalled; returns (job id, queue rowid)."""
    rows = conn.execute(
        "UPDATE job SET state = 'waiting', stalled = stalled + 1, lease_owner = NULL, lease_expires_at = NULL"
        " WHERE state = 'active' AND lease_expires_at <= ? RETURNING rowid, id, queue_id",
        (now,),
    ).fetchall()
    if rows:
        _release_keys(conn, [rowid for rowid, _, _ in rows])
        _count_requeued(conn, [queue_id for _, _, queue_id in rows])
    return [(job_id, queue_id) for _, job_id, queue_id in rows]


def _count_requeued(conn: Conn, queue_ids: Iterable[int]) -> None:
    counts.shift(conn, _moved_per_queue(Counter(queue_ids).items(), JobState.ACTIVE, JobState.WAITING))


def requeue_orphans(conn: Conn, node_id: str) -> int:
    """At start, the active jobs this node's dispatcher leased belong to a process that is gone: put them back.

    SQLite has one node, so that is every such job. On PostgreSQL the other nodes' leases are theirs (live, or
    reaped by a sweeper when they run out): only this node's own (lease owner `<node_id>.…`) are taken back.
    A job a worker leased (its lease owner starts with WORKER_LEASES) is held by a process that may well
    have outlived the server: its lease runs out as usual, and the worker may still complete it.
    """
    if is_postgres(conn):
        rows = conn.execute(
            "UPDATE job SET state = 'waiting', stalled = stalled + 1, lease_owner = NULL, lease_expires_at = NULL"
            " WHERE state = 'active' AND lease_owner LIKE ? RETURNING rowid, queue_id", (node_id + ".%",),
        ).fetchall()
        if rows:
            _release_keys(conn, [rowid for rowid, _ in rows])
    else:
        rows = conn.execute(
            "UPDATE job SET state = 'waiting', stalled = stalled + 1, lease_owner = NULL, lease_expires_at = NULL"
            " WHERE state = 'active' AND lease_owner NOT LIKE ? RETURNING rowid, queue_id", (WORKER_LEASES + "%",),
        ).fetchall()
        conn.execute("DELETE FROM concurrency_lock WHERE job_rowid NOT IN (SELECT rowid FROM job WHERE state = 'active')")
    _count_requeued(conn, [queue_id for _, queue_id in rows])
    return len(rows)


# Leases held by workers (pull queues) -------------------------------------------------------------


class Held(msgspec.Struct, frozen=True, kw_only=True):
    """A lease that still holds its job: `index` is its place in the caller's list."""

    index: int
    claimed: Claimed
    started_at: int


_HELD_LEASES = (
    "SELECT json_group_array(json_array(l.key, job.rowid, job.id, job.queue_id, job.attempts, job.max_attempts,"
    " job.concurrency_key, job.schedule_id, job.started_at)) FROM json_each(?1) AS l CROSS JOIN job"
    " ON job.queue_id = l.value ->> 0 AND job.id = l.value ->> 1"
    " WHERE job.state = 'active' AND job.lease_owner = l.value ->> 2 AND job.lease_expires_at > ?2"
)
_HeldRow = tuple[int, int, str, int, int, int, str | None, str | None, int]


# PostgreSQL: the jobs found are locked until the caller's transaction ends, so that no other node reaps
# or claims them between this check and the extension or outcome that follows it.
_HELD_LEASES_PG = (
    "SELECT CAST(l.ord AS BIGINT) - 1, job.rowid, job.id, job.queue_id, job.attempts, job.max_attempts,"
    " job.concurrency_key, job.schedule_id, job.started_at FROM json_array_elements(?1::json) WITH ORDINALITY AS l(value, ord)"
    " JOIN job ON job.queue_id = CAST(l.value ->> 0 AS BIGINT) AND job.id = l.value ->> 1"
    " WHERE job.state = 'active' AND job.lease_owner = l.value ->> 2 AND job.lease_expires_at > ?2"
    " ORDER BY job.rowid FOR UPDATE OF job"
)


def held_leases(conn: Conn, leases: Sequence[tuple[int, str, str]], now: int) -> list[Held]:
    """Those of the (queue rowid, job id, lease token) that hold their active job at `now`: a wrong token,
    another claim's token or a lease that ran out holds nothing."""
    if is_postgres(conn):
        found = [tuple(row) for row in conn.execute(_HELD_LEASES_PG, (_json(leases), now)).fetchall()]
    else:
        found = _json_rows(conn, _HELD_LEASES, (_json(leases), now), list[_HeldRow])
    return [
        Held(index=index, started_at=started_at, claimed=Claimed(
            rowid=rowid, id=job_id, queue_id=queue_id, payload=b"", attempt=attempts + 1, max_attempts=max_attempts,
            lease_token=leases[index][2], concurrency_key=key, schedule_id=schedule_id,
        ))
        for index, rowid, job_id, queue_id, attempts, max_attempts, key, schedule_id, started_at in found
    ]


def tags_of(conn: Conn, rowids: Sequence[int]) -> dict[int, list[str]]:
    """The tags of the jobs that have any, by rowid."""
    rows = conn.execute(
        "SELECT job.rowid, job.tags FROM json_each(?) AS r CROSS JOIN job ON job.rowid = r.value WHERE job.tags IS NOT NULL",
        (_json(rowids),),
    ).fetchall()
    return {rowid: msgspec.json.decode(tags) for rowid, tags in rows}


def extend_leases(conn: Conn, expiries: Sequence[tuple[int, int]]) -> None:
    """Set the lease expiry of each (job rowid, expires at); the caller checked that the leases hold
    (`held_leases`, which on PostgreSQL also locked the jobs)."""
    if is_postgres(conn):
        conn.execute(
            "UPDATE job SET lease_expires_at = CAST(e.value ->> 1 AS BIGINT) FROM json_each(?) AS e"
            " WHERE job.rowid = CAST(e.value ->> 0 AS BIGINT) AND job.state = 'active'",
            (_json(expiries),),
        )
        return
    conn.execute(
        "UPDATE job SET lease_expires_at = e.value ->> 1 FROM json_each(?) AS e WHERE job.rowid = e.value ->> 0",
        (_json(expiries),),
    )


# Group keys (fair queueing, rate limits) -----------------------------------------------------------

# The SQL twin of services.fairness.group_key_of: a string as is (its first 256 characters), an integer
# in decimal, anything else (or nothing) the empty key.
_GROUP_OF_PAYLOAD = (
    "CASE json_type(CAST(payload AS TEXT), ?2) WHEN 'text' THEN substr(json_extract(CAST(payload AS TEXT), ?2), 1, 256)"
    " WHEN 'integer' THEN CAST(json_extract(CAST(payload AS TEXT), ?2) AS TEXT) ELSE '' END"
)


_PAYLOAD_AT_PG = "(convert_from(payload, 'UTF8')::jsonb #> CAST(?2 AS TEXT[]))"
_GROUP_OF_PAYLOAD_PG = (
    f"CASE jsonb_typeof({_PAYLOAD_AT_PG}) WHEN 'string' THEN substr({_PAYLOAD_AT_PG} #>> '{{}}', 1, 256)"
    f" WHEN 'number' THEN CASE WHEN {_PAYLOAD_AT_PG} #>> '{{}}' ~ '^-?[0-9]+$' THEN {_PAYLOAD_AT_PG} #>> '{{}}' ELSE '' END"
    " ELSE '' END"
)


def _pg_path(json_path: str) -> list[str]:
    """A SQLite JSON path of names (`$."a"."b"`) as the names PostgreSQL's `#>` takes (`['a', 'b']`)."""
    return json_path[3:-1].split('"."') if json_path != "$" else []


def regroup_jobs(conn: Conn, queue_rowid: int, *, json_path: str | None, by_concurrency_key: bool) -> None:
    """Recompute the group key of every job of the queue after its grouping changed: from the payload at
    `json_path`, from the concurrency key, or none (neither). One statement, over the queue's jobs."""
    if by_concurrency_key:
        conn.execute("UPDATE job SET group_key = coalesce(concurrency_key, '') WHERE queue_id = ?1", (queue_rowid,))
    elif json_path is not None and is_postgres(conn):
        conn.execute(f"UPDATE job SET group_key = {_GROUP_OF_PAYLOAD_PG} WHERE queue_id = ?1", (queue_rowid, _pg_path(json_path)))
    elif json_path is not None:
        conn.execute(f"UPDATE job SET group_key = {_GROUP_OF_PAYLOAD} WHERE queue_id = ?1", (queue_rowid, json_path))
    else:
        conn.execute("UPDATE job SET group_key = NULL WHERE queue_id = ?1 AND group_key IS NOT NULL", (queue_rowid,))


# Manual state changes -------------------------------------------------------------


def set_state(conn: Conn, job: Job, state: JobState, now: int) -> None:
    """Move `job` (as read in this transaction) to `state`: cancelled, or a fresh start in another state."""
    if state == JobState.CANCELLED:
        conn.execute("UPDATE job SET state = 'cancelled', finished_at = ? WHERE rowid = ?", (now, job.rowid))
    else:
        conn.execute(
            "UPDATE job SET state = ?, attempts = 0, run_at = ?, finished_at = NULL, fail_reason = NULL,"
            " blocked_by = NULL, block_reason = NULL, started_at = NULL WHERE rowid = ?",
            (state, now, job.rowid),
        )
    counts.move(conn, job.queue_id, job.state, state, 1)


def job_row(conn: Conn, queue_rowid: int, job_id: str) -> Sequence[Any] | None:
    row: Sequence[Any] | None = conn.execute(
        f"SELECT {_JOB_COLUMNS} FROM job WHERE queue_id = ? AND id = ?", (queue_rowid, job_id)
    ).fetchone()
    return row


def retry_failed(conn: Conn, queue_rowid: int, job_ids: Sequence[str] | None, now: int) -> int:
    """Failed jobs of a queue (all, or those listed) → waiting with attempts reset."""
    sql = (
        "UPDATE job SET state = 'waiting', attempts = 0, run_at = ?, finished_at = NULL, fail_reason = NULL,"
        " started_at = NULL WHERE queue_id = ? AND state = 'failed'"
        " AND coalesce(fail_reason, '') != 'rejected'"  # a rejected approval is final
    )
    if job_ids is None:
        retried = conn.execute(sql, (now, queue_rowid)).rowcount
    else:
        retried = sum(conn.execute(sql + " AND id = ?", (now, queue_rowid, job_id)).rowcount for job_id in job_ids)
    counts.move(conn, queue_rowid, JobState.FAILED, JobState.WAITING, retried)
    return retried


def drain_queue(conn: Conn, queue_rowid: int, now: int) -> int:
    """Waiting and delayed jobs (screening ones too: they show as waiting) → cancelled."""
    drained = 0
    for state in (JobState.WAITING, JobState.DELAYED, JobState.SCREENING):
        n = conn.execute(
            "UPDATE job SET state = 'cancelled', finished_at = ? WHERE queue_id = ? AND state = ?", (now, queue_rowid, state)
        ).rowcount
        counts.move(conn, queue_rowid, state, JobState.CANCELLED, n)
        drained += n
    return drained


_FINISHED_BEFORE = (
    "SELECT json_group_array(json_array(rowid, queue_id, state)) FROM (SELECT rowid, queue_id, state FROM job"
    " WHERE workspace_id = ? AND state IN ('completed', 'failed', 'cancelled', 'guardrail.blocked')"
    " AND finished_at < ? ORDER BY finished_at LIMIT ?)"
)


_FINISHED_BEFORE_PG = (
    "SELECT rowid, queue_id, state FROM job WHERE workspace_id = ? AND state IN ('completed', 'failed', 'cancelled',"
    " 'guardrail.blocked') AND finished_at < ? ORDER BY finished_at LIMIT ? FOR UPDATE SKIP LOCKED"
)


_JOB_PARTS = (("job_tags", "job_tag", "job_rowid"), ("job_attempts", "job_attempt", "job_rowid"), ("jobs", "job", "rowid"))


def prune_finished(conn: Conn, workspace_id: str, before: int, limit: int = 500) -> dict[str, int]:
    """Delete up to `limit` of the workspace's jobs that finished before `before`, with their tags and
    attempts (retention); returns the rows deleted per kind, nothing when no job was due.

    Small slices: every other write waits while this one holds the writer.
    """
    if is_postgres(conn):  # locked: another node's sweeper prunes other rows, and counts only its own
        found = [tuple(row) for row in conn.execute(_FINISHED_BEFORE_PG, (workspace_id, before, limit)).fetchall()]
    else:
        found = _json_rows(conn, _FINISHED_BEFORE, (workspace_id, before, limit), list[tuple[int, int, str]])
    if not found:
        return {}
    rowids = _json(rowid for rowid, _, _ in found)
    pruned = {
        kind: conn.execute(f"DELETE FROM {table} WHERE {column} IN (SELECT value FROM json_each(?))", (rowids,)).rowcount
        for kind, table, column in _JOB_PARTS
    }
    removed = Counter((queue_id, state) for _, queue_id, state in found)
    counts.shift(conn, {key: -n for key, n in removed.items()})
    return pruned


# Reads ------------------------------------------------------------------------------


async def get_job(db: Database, queue_rowid: int, job_id: str) -> Sequence[Any] | None:
    row: Sequence[Any] | None = await db.fetchone(
        f"SELECT {_JOB_COLUMNS} FROM job WHERE queue_id = ? AND id = ?", (queue_rowid, job_id)
    )
    return row


async def attempts_of(db: Database, rowid: int) -> list[Attempt]:
    rows = await db.fetchall(
        "SELECT attempt, at, duration_ms, status, outcome, error FROM job_attempt WHERE job_rowid = ? ORDER BY rowid",
        (rowid,),
    )
    return [Attempt(attempt=r[0], at=r[1], duration_ms=r[2], status=r[3], outcome=r[4], error=r[5]) for r in rows]


_MAX_ROWID = 2**63 - 1
_EVERY_STATE = tuple(JobState)
_COMPOUND_LIMIT = 250  # SQLite allows 500 terms in one compound SELECT


async def list_jobs(
    db: Database, queue_rowids: Sequence[int], *, states: Sequence[str] | None, tag: str | None,
    before_rowid: int | None, limit: int,
) -> list[Any]:
    """Jobs of the queues, newest first, optionally filtered by state and tag.

    Each (queue, state) pair, or each queue's tag, is an index range already in rowid order: the page
    merges the first `limit` rows of each, so it costs the same at 10 million jobs as at 1,000 (one
    ORDER BY over all the queues' jobs sorted every one of them). With a tag and states, the rows of
    one range are checked against the other until `limit` match, and the range walked is the cheaper
    one (the states' size is in the counters, the tag's is counted up to that): a rare match among
    many tagged jobs reads the few jobs of a state (failed, delayed), not every tagged one. Only a tag
    and states that both hold many jobs, with few jobs in common, still walk far.
    """
    before = _MAX_ROWID if before_rowid is None else before_rowid
    if tag is None:
        ranges = [_state_range(queue, state, before, limit)
                  for queue in queue_rowids for state in (states or _EVERY_STATE)]
    elif not states:
        ranges = [_tag_range(queue, tag, (), before, limit) for queue in queue_rowids]
    else:
        by_state = await _queues_walked_by_state(db, queue_rowids, tag, states, before)
        ranges = []
        for queue in queue_rowids:
            if queue in by_state:
                ranges += [_state_range(queue, state, before, limit, tag) for state in states]
            else:
                ranges.append(_tag_range(queue, tag, states, before, limit))
    if not ranges:
        return []
    merged, params = _merged(ranges)
    sql = f"SELECT {_JOB_COLUMNS} FROM job WHERE rowid IN (SELECT r FROM ({merged}) ORDER BY r DESC LIMIT ?)"
    return list(await db.fetchall(sql + " ORDER BY rowid DESC", [*params, limit]))


# A tagged job's state is read from its (wide) row, a job's tag from the narrow job_tag key: checking a
# tagged job costs about 3 times as much (17.6 ms for 10,000 tagged jobs, 5.9 ms for 10,000 failed ones).
_TAG_ROW_COST = 3
_TAG_COUNT_MAX = 20_000  # how far the tag's range is counted to choose (about 1 ms)


def _state_range(queue: int, state: str, before: int, limit: int, tag: str | None = None) -> tuple[str, list[Any]]:
    """The queue's jobs in `state` below `before`, newest first (with `tag` only, if given)."""
    tagged = (" AND EXISTS (SELECT 1 FROM job_tag AS t WHERE t.queue_id = job.queue_id AND t.tag = ?"
              " AND t.job_rowid = job.rowid)") if tag is not None else ""
    sql = (f"SELECT rowid AS r FROM job WHERE queue_id = ? AND state = ? AND rowid < ?{tagged}"
           " ORDER BY rowid DESC LIMIT ?")
    return sql, [queue, state, before, *([tag] if tag is not None else []), limit]


def _tag_range(queue: int, tag: str, states: Sequence[str], before: int, limit: int) -> tuple[str, list[Any]]:
    """The queue's jobs with `tag` below `before`, newest first (in `states` only, if any)."""
    in_states = f" AND job.state IN ({','.join('?' * len(states))})" if states else ""
    sql = ("SELECT t.job_rowid AS r FROM job_tag AS t JOIN job ON job.rowid = t.job_rowid"
           f" WHERE t.queue_id = ? AND t.tag = ? AND t.job_rowid < ?{in_states} ORDER BY t.job_rowid DESC LIMIT ?")
    return sql, [queue, tag, before, *states, limit]


async def _queues_walked_by_state(
    db: Database, queue_rowids: Sequence[int], tag: str, states: Sequence[str], before: int,
) -> set[int]:
    """The queues whose jobs in `states` (by the counters) cost less to check for the tag than their tagged jobs
    (counted no further than that, nor than `_TAG_COUNT_MAX`) to check for the states."""
    known = await counts.counts_of(db, queue_rowids)
    walked = set()
    for queue in queue_rowids:
        enough = min(sum(known[queue].get(state, 0) for state in states) // _TAG_ROW_COST, _TAG_COUNT_MAX)
        tagged = await db.fetchone(
            "SELECT count(*) FROM (SELECT 1 FROM job_tag WHERE queue_id = ? AND tag = ? AND job_rowid < ? LIMIT ?)",
            (queue, tag, before, enough + 1),
        )
        if tagged[0] > enough:
            walked.add(queue)
    return walked


def _merged(ranges: list[tuple[str, list[Any]]]) -> tuple[str, list[Any]]:
    """One UNION ALL of the ranges (nested in groups below SQLite's compound limit), and its parameters."""
    parts = [f"SELECT r FROM ({sql})" for sql, _ in ranges]
    params = [value for _, values in ranges for value in values]
    while len(parts) > _COMPOUND_LIMIT:
        parts = [f"SELECT r FROM ({' UNION ALL '.join(parts[i:i + _COMPOUND_LIMIT])})"
                 for i in range(0, len(parts), _COMPOUND_LIMIT)]
    return " UNION ALL ".join(parts), params
