"""The runtime: opens storage, checks the master key, bootstraps, and runs the engine loops."""

from __future__ import annotations

import fcntl
import logging
import os
from contextlib import AsyncExitStack
from pathlib import Path
from typing import IO

from rotor_lite.clock import Clock, SystemClock
from rotor_lite.config import Settings
from rotor_lite.crypto import KEY_CHECK_PLAINTEXT, Vault, load_master_key
from rotor_lite.errors import ConfigError
from rotor_lite.files import make_data_dir, node_id, open_private
from rotor_lite.engine.delivery import Deliverer
from rotor_lite.engine.dispatcher import Dispatcher
from rotor_lite.engine.judge import BrandToneJudge
from rotor_lite.engine.outbox import OutboxDelivery, install_notifications
from rotor_lite.engine.pool import helper_count
from rotor_lite.engine.scheduler import Scheduler
from rotor_lite.engine.sweeper import Sweeper
from rotor_lite.engine.workflows import RunDriver
from rotor_lite.services import workspaces
from rotor_lite.services.cluster import follow_other_nodes
from rotor_lite.services.core import Core
from rotor_lite.services.hooks import SecretSource
from rotor_lite.services.keyring import CreatedKey
from rotor_lite.services.workers import PullBroker
from rotor_lite.store import jobs as job_store
from rotor_lite.store import workspaces as ws_store
from rotor_lite.store.backends import open_database
from rotor_lite.store.contract import Conn, lock_across_nodes

log = logging.getLogger("rotor_lite.runtime")
_KEY_CHECK = "master_key_check"


class Runtime:
    """Everything the server runs, entered and left as one async context manager."""

    def __init__(self, settings: Settings, clock: Clock | None = None, data_lock: IO[str] | None = None) -> None:
        """`data_lock`: the data directory's lock when the caller took it already (`claim_data_dir`)."""
        self.settings = settings
        self.clock = clock or SystemClock()
        self._stack = AsyncExitStack()
        self._lock_file = data_lock
        self.core: Core | None = None
        self.dispatcher: Dispatcher | None = None
        self.bootstrap_key: CreatedKey | None = None

    async def __aenter__(self) -> Runtime:
        try:
            await self._start()
        except BaseException:
            # What started must stop: the database's threads alone would keep a failed start's process alive.
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _start(self) -> None:
        data_dir = self.settings.data_path
        if self._lock_file is None:
            self._lock_file = claim_data_dir(data_dir)
        vault = Vault(load_master_key(self.settings.security.master_key, data_dir))
        db = await self._stack.enter_async_context(open_database(self.settings))
        core = self.core = Core(self.settings, self.clock, db, vault)
        await self._stack.enter_async_context(core.keys)  # writes the keys' last use, also on the way out
        await self._stack.enter_async_context(core.throughput)  # writes the delivery tallies, also on the way out
        requeued = await db.write(self._prepare)
        if requeued:
            log.warning("requeued jobs left active by a previous process", extra={"count": requeued})
        sink = install_notifications(core)  # outbox event sink, vault values, queue.error observer
        # First in, last out: every part that sends (dispatcher, outbox, workflow runs) has stopped before it.
        deliverer = await self._stack.enter_async_context(make_deliverer(self.settings, self.clock, core.secret_values))
        core.delivery_helpers = deliverer.helpers
        core.metrics.helpers = lambda: [(h.index, h.alive, h.in_flight, h.restarts, h.delivered) for h in deliverer.helpers()]
        await self._stack.enter_async_context(OutboxDelivery(core, sink, deliverer))
        await self._stack.enter_async_context(BrandToneJudge(core))  # installs the guardrail admission
        core.pull = await self._stack.enter_async_context(PullBroker(core))
        self.dispatcher = await self._stack.enter_async_context(Dispatcher(core, deliverer))
        core.on_jobs_ready = self._wake_claimers
        await self._stack.enter_async_context(RunDriver(core, deliverer))
        await self._stack.enter_async_context(Sweeper(core, self._wake_claimers))
        core.on_schedules_changed = (await self._stack.enter_async_context(Scheduler(core))).wake
        follow_other_nodes(core, self._wake_claimers)
        self.dispatcher.wake()

    def _wake_claimers(self) -> None:
        """Jobs may have become ready: the dispatcher claims for callback queues, waiting workers for pull queues."""
        assert self.core is not None and self.dispatcher is not None
        self.dispatcher.wake()
        self.core.pull.wake()

    def stop_waiting(self) -> None:
        """The server begins to stop: long-polling lease requests answer now, and the dashboard's live streams
        end, instead of holding it up."""
        if self.core is not None:
            self.core.stopping.set()
        pull = getattr(self.core, "pull", None)
        if pull is not None:
            pull.close()

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()
        if self._lock_file is not None:
            self._lock_file.close()

    def _prepare(self, conn: Conn) -> int:
        assert self.core is not None
        lock_across_nodes(conn, "rotor-lite:prepare")  # nodes starting together on an empty database
        _check_master_key(conn, self.core.vault)
        self.bootstrap_key = workspaces.bootstrap(conn, self.settings.auth.bootstrap_api_key, self.clock.now_ms())
        self.core.queues.load(conn, self.core.vault)
        self.core.plans.load(conn)
        self.core.workflows.load(conn, self.core.vault)
        return job_store.requeue_orphans(conn, node_id(self.settings.data_path))


def make_deliverer(settings: Settings, clock: Clock, secrets: SecretSource | None) -> Deliverer:
    """The one delivery engine: job callbacks, workflow calls, webhooks and alerts all go through it."""
    return Deliverer(
        clock, allow_private=settings.callbacks.allow_private_networks, max_connections=settings.callbacks.max_connections,
        max_notifications=settings.webhooks.max_in_flight, secrets=secrets,
        processes=helper_count(settings.delivery.processes), log_format=settings.server.log_format,
    )


def _check_master_key(conn: Conn, vault: Vault) -> None:
    check = ws_store.get_meta(conn, _KEY_CHECK)
    if check is None:
        ws_store.set_meta(conn, _KEY_CHECK, vault.encrypt(KEY_CHECK_PLAINTEXT))
    elif not vault.matches(check):
        raise ConfigError(
            "the master key does not match the one this data directory was written with "
            "(check security.master_key / ROTOR_SECURITY_MASTER_KEY or data/master.key)"
        )


def claim_data_dir(data_dir: Path) -> IO[str]:
    """Create the data directory and lock it for this process (the lock holds while the file stays open).

    One server per data directory: a second one would deliver every job twice.
    """
    make_data_dir(data_dir)
    # No O_TRUNC: a refused second server must not wipe the pid the running one wrote
    handle = os.fdopen(open_private(data_dir / "server.lock", os.O_WRONLY | os.O_APPEND), "a")  # held until exit
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        raise ConfigError(f"another rotor-lite server is already using {data_dir}") from exc
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
