"""Several nodes on one database: what one node writes, the others learn at once.

Every PostgreSQL transaction names, when it commits, the tables it wrote (`store/pg.py`). A node
hearing another node's notice reloads what it keeps in memory of those tables (queues, plans,
functions and signing keys, webhook subscriptions, cached secrets, keys and guardrail policies) and
wakes the loops that work on them (dispatcher and pull workers, the workflow driver, the scheduler,
webhook delivery), so work enqueued through one node starts on an idle other node without waiting
for a poll. Notices heard together are handled together, once per turn of the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from rotor_lite.services.core import Core
from rotor_lite.services.events import OutboxSink
from rotor_lite.services.guardrails import GuardrailAdmission
from rotor_lite.store import nodes as node_store
from rotor_lite.store.contract import Conn, is_postgres

log = logging.getLogger("rotor_lite.cluster")

# New jobs wake the claimers, not every change of a job: settling one frees a slot its own node fills.
_WAKES_CLAIMERS = frozenset({"+job", "queue"})
_WAKES_RUNS = frozenset({"run", "run_step", "run_waiter", "deferred_event", "signal_resolution", "function"})
_WAKES_SCHEDULER = frozenset({"schedule"})
_WAKES_OUTBOX = frozenset({"outbox", "delivery", "webhook"})
_GUARDRAIL_TABLES = frozenset({"guardrail_config", "dnc_email", "dnc_domain", "guardrail_block"})
_EVERYTHING = (
    _WAKES_CLAIMERS | _WAKES_RUNS | _WAKES_SCHEDULER | _WAKES_OUTBOX | _GUARDRAIL_TABLES
    | {"secret", "api_key", "workspace", "signing_key", "alert_config"}
)  # notices may have been missed (the listening connection was lost): reload and wake it all


class ClusterFollower:
    """Applies other nodes' changes to this node's memory and wakes its loops."""

    def __init__(self, core: Core, wake_claimers: Callable[[], None]) -> None:
        self._core = core
        self._wake_claimers = wake_claimers
        self._heard: set[str] = set()
        self._reloading: set[asyncio.Task[None]] = set()

    def heard(self, payload: str) -> None:
        """A notice of tables another node wrote (on this node's event loop)."""
        if not self._heard:
            asyncio.get_running_loop().call_soon(self._apply)
        if payload == "*":
            self._heard.update(_EVERYTHING)
            return
        for table in payload.split(","):
            self._heard.add(table)
            self._heard.add(table.lstrip("+"))  # an insert is a change of its table too

    def _apply(self) -> None:
        tables, self._heard = self._heard, set()
        self._forget_cached(tables)
        reloads = self._reloads(tables)
        if reloads:
            task = asyncio.get_running_loop().create_task(self._reload(reloads, tables))
            self._reloading.add(task)
            task.add_done_callback(self._reloading.discard)
        else:
            self._wake(tables)

    def _forget_cached(self, tables: set[str]) -> None:
        core = self._core
        if "secret" in tables:
            clear = getattr(core.secret_values, "clear", None)
            if clear is not None:
                clear()
        if tables & {"api_key", "api_key_workspace", "workspace"}:
            core.keys.forget_all()
        if tables & _GUARDRAIL_TABLES and isinstance(core.admission, GuardrailAdmission):
            core.admission.policies.invalidate_all()

    def _reloads(self, tables: set[str]) -> list[Callable[[Conn], None]]:
        core = self._core
        reloads: list[Callable[[Conn], None]] = []
        if "queue" in tables:
            reloads.append(lambda conn: core.queues.reload(conn, core.vault))
        if "workspace" in tables:
            reloads.append(core.plans.load)
        if tables & {"function", "signing_key"}:
            reloads.append(lambda conn: core.workflows.reload(conn, core.vault))
        if tables & {"webhook", "alert_config"} and isinstance(core.events, OutboxSink):
            reloads.append(core.events.reload)
        return reloads

    async def _reload(self, reloads: list[Callable[[Conn], None]], tables: set[str]) -> None:
        """Reload in the writer, where this node's own writes change the same registries."""
        try:
            await self._core.db.write(lambda conn: [reload(conn) for reload in reloads])
        except Exception:  # the next notice or the next start reads them again
            log.exception("reloading what another node changed failed", extra={"tables": ",".join(sorted(tables))})
        self._wake(tables)

    def _wake(self, tables: set[str]) -> None:
        core = self._core
        if tables & _WAKES_CLAIMERS:
            self._wake_claimers()
        if tables & _WAKES_RUNS:
            core.workflows.on_ready()
        if tables & _WAKES_SCHEDULER:
            core.on_schedules_changed()
        if tables & _WAKES_OUTBOX and isinstance(core.events, OutboxSink):
            core.events.notify()


def follow_other_nodes(core: Core, wake_claimers: Callable[[], None]) -> None:
    """Listen to the other nodes' changes (nothing on SQLite: no other node shares the file)."""
    if core.db.dialect == "postgres":
        from rotor_lite.store.pg import CHANGES_CHANNEL  # asyncpg only where PostgreSQL is used

        core.db.listen(CHANGES_CHANNEL, ClusterFollower(core, wake_claimers).heard)


class ConcurrencyShare:
    """This node's share of each queue's concurrency: the concurrency over the nodes seen lately, rounded up.

    A queue's concurrency holds across nodes (claims count every node's active jobs); without shares, the
    node that first fills a queue keeps every slot, refilling each as it settles, and the other nodes never
    deliver for it. With one node (always, on SQLite) the share is the whole concurrency.
    """

    REPORT_EVERY_MS = 2_000
    LIVE_FOR_MS = 10_000  # a node not seen for this long no longer counts: its share goes to the others

    def __init__(self, node: str) -> None:
        self._node = node
        self._nodes = 1
        self._reported_at: int | None = None

    def refresh(self, conn: Conn, now: int) -> None:
        """In a claim's write: say this node is alive and count the live nodes (every few seconds)."""
        if not is_postgres(conn):
            return
        if self._reported_at is not None and now - self._reported_at < self.REPORT_EVERY_MS:
            return
        self._nodes = node_store.report_and_count(conn, self._node, now, now - self.LIVE_FOR_MS)
        self._reported_at = now

    def of(self, concurrency: int) -> int:
        return -(-concurrency // self._nodes)
