"""Fair queueing and per-key rate limits: which group a job belongs to, and whose turn it is.

A queue with `fairness: {key}` or `rateLimit: {key, max, per}` groups its jobs by a key: the job's
`concurrencyKey`, or a value in its payload (`payload.tenant.id`). Each job's value is computed once,
when it is stored (after the guardrails had their say on the payload), and kept on its row, so a claim
never reads a payload. The claim (`store.jobs.acquire_jobs`) visits the groups that have waiting jobs
in key order, starting after the group it served last, and takes each group's first job: one index seek
per group, whatever the length of a group's backlog. `Turns` keeps, per queue and in memory, the group
served last and the start times that rate limits count (a restart forgets both: the walk starts again
from the first group, and every group gets its full rate back).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from typing import Any

import msgspec

from rotor_lite.errors import ValidationError
from rotor_lite.models import Queue, RateLimit

BY_CONCURRENCY_KEY = "concurrencyKey"
MAX_GROUP_LENGTH = 256
_PAYLOAD_PATH = re.compile(r"^payload(\.[A-Za-z0-9_-]{1,64}){1,8}$")
_INT64 = range(-(2**63), 2**63)
_PRUNE_EVERY = 1024  # claims of a queue between two sweeps of its idle groups' start times


def check_group_key(key: str, field: str) -> str:
    """A valid group key spelling: `concurrencyKey`, or `payload.` and a dotted path into the payload."""
    if key != BY_CONCURRENCY_KEY and not _PAYLOAD_PATH.match(key):
        raise ValidationError(
            f"{field} must be 'concurrencyKey' or a payload path like 'payload.tenantId' (up to 8 names of"
            " letters, digits, '_' and '-')", field=field,
        )
    return key


def json_path(key: str) -> str | None:
    """The SQLite JSON path of a payload key (`payload.a.b` → `$."a"."b"`); None for `concurrencyKey`."""
    if key == BY_CONCURRENCY_KEY:
        return None
    return "$" + "".join(f'."{name}"' for name in key.split(".")[1:])


def group_key_of(key: str, payload: bytes, concurrency_key: str | None) -> str:
    """The job's group under `key`: a string value as is (its first 256 characters), an integer in decimal,
    and anything else, or nothing there, the empty group (`store.jobs.regroup_jobs` computes the same in SQL)."""
    if key == BY_CONCURRENCY_KEY:
        return concurrency_key or ""
    value: Any = msgspec.json.decode(payload)
    for name in key.split(".")[1:]:
        value = value.get(name) if isinstance(value, dict) else None
    if isinstance(value, str):
        return value[:MAX_GROUP_LENGTH]
    if isinstance(value, int) and not isinstance(value, bool) and value in _INT64:
        return str(value)
    return ""


class _Window:
    """The start times of one group within its rate limit's window, oldest first."""

    __slots__ = ("starts",)

    def __init__(self, limit: RateLimit) -> None:
        self.starts: deque[int] = deque(maxlen=limit.max)

    def left(self, limit: RateLimit, now: int) -> int:
        while self.starts and self.starts[0] <= now - limit.per_ms:
            self.starts.popleft()
        return limit.max - len(self.starts)


class _QueueTurns:
    """One queue's side of `Turns`, kept across claims."""

    def __init__(self) -> None:
        self.after: str | None = None
        self.windows: dict[str, _Window] = {}
        self.full: dict[str, int] = {}  # group → when its oldest start leaves the window
        self.claims = 0


class Turns:
    """What fair claims remember per queue: the group served last, and each group's recent starts.

    Used by the writer thread only (claims run there). `for_claim` hands `store.jobs.acquire_jobs` the
    view of one queue at one moment.
    """

    def __init__(self) -> None:
        self._queues: dict[int, _QueueTurns] = {}

    def for_claim(self, queue: Queue, now: int) -> ClaimTurns:
        state = self._queues.setdefault(queue.rowid, _QueueTurns())
        state.claims += 1
        if state.claims % _PRUNE_EVERY == 0 and queue.rate_limit is not None:
            _forget_idle(state, queue.rate_limit, now)
        return ClaimTurns(state, queue.rate_limit, now)

    def next_refill(self, now: int) -> int | None:
        """When the first group whose rate is used up may start a job again (None: no group waits for that)."""
        due = [at for state in self._queues.values() for at in state.full.values() if at > now]
        return min(due, default=None)

    def forget(self, queue_rowid: int) -> None:
        """The queue was deleted or regrouped: its turns and windows mean nothing any more."""
        self._queues.pop(queue_rowid, None)


def _forget_idle(state: _QueueTurns, limit: RateLimit, now: int) -> None:
    idle = [group for group, window in state.windows.items() if window.left(limit, now) == limit.max]
    for group in idle:
        del state.windows[group]


class ClaimTurns:
    """`store.jobs.Turns` for one claim of one queue at `now`."""

    def __init__(self, state: _QueueTurns, limit: RateLimit | None, now: int) -> None:
        self._state, self._limit, self._now = state, limit, now

    @property
    def after(self) -> str | None:
        return self._state.after

    @after.setter
    def after(self, group: str | None) -> None:
        self._state.after = group

    def skipped(self) -> Sequence[str]:
        full = self._state.full
        for group in [group for group, at in full.items() if at <= self._now]:
            del full[group]
        return list(full)

    def allowance(self, group: str) -> int:
        if self._limit is None:
            return 2**31
        window = self._state.windows.get(group)
        return self._limit.max if window is None else window.left(self._limit, self._now)

    def took(self, group: str, count: int) -> None:
        limit = self._limit
        if limit is None:
            return
        window = self._state.windows.get(group)
        if window is None:
            window = self._state.windows[group] = _Window(limit)
        window.starts.extend([self._now] * count)
        if window.left(limit, self._now) <= 0:
            self._state.full[group] = window.starts[0] + limit.per_ms
