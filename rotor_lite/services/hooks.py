"""Extension points of the job path, so later capabilities plug in without reshaping it.

- `EventSink.emit` runs inside the writer transaction of a state change (job completed,
  failed, stalled, …): an outbox written there is never lost and never delays the change.
- `AttemptObserver`s run in the transaction that records each delivery attempt's outcome
  (schedule runs keep their `callback_status` current this way).
- `SecretSource.resolve` gives delivery the vault's plaintexts for `${{ secrets.NAME }}`.
- `Admission.screen` sees new jobs before they are stored (guardrails may rewrite a payload
  or block a job); `Admission.on_insert` runs in the inserting transaction (approval records).

The defaults do nothing.
"""

from __future__ import annotations

from typing import Any, Protocol

from rotor_lite.models import Attempt, Claimed, Job, Queue
from rotor_lite.store.contract import Conn


class EventSink(Protocol):
    def emit(self, conn: Conn, workspace_id: str, event_type: str, data: dict[str, Any]) -> None:
        """Record that `event_type` happened, in the caller's transaction."""

    def wants(self, workspace_id: str, event_type: str) -> bool:
        """False when nobody would hear `event_type` (lets an emitter skip costly work)."""


class SecretSource(Protocol):
    async def resolve(self, workspace_id: str, names: set[str], context: dict[str, str]) -> dict[str, str]:
        """The plaintext of each known secret among `names` (absent names are unknown)."""


class AttemptObserver(Protocol):
    def __call__(
        self, conn: Conn, queue: Queue, job: Claimed, attempt: Attempt, terminal: bool
    ) -> None:
        """`job`'s delivery ended as `attempt`; `terminal` when the job is now completed or failed."""


class Admission(Protocol):
    async def screen(self, queue: Queue, jobs: list[Job]) -> list[Job]:
        """The jobs as they should be stored (same order, same ids)."""

    def on_insert(self, conn: Conn, queue: Queue, jobs: list[Job]) -> None:
        """Called in the transaction that inserts `jobs` (only the new ones)."""

    async def retry(self, queue: Queue, job_id: str, actor: str) -> Job | None:
        """Take over a manual retry it owns (a blocked job is screened again); None leaves it to the caller."""

    def on_cancel(self, conn: Conn, job: Job, actor: str) -> None:
        """`job` (as it was) was cancelled by `actor`, in the cancelling transaction (closes its approval)."""


class NoEvents:
    def emit(self, conn: Conn, workspace_id: str, event_type: str, data: dict[str, Any]) -> None:
        return None

    def wants(self, workspace_id: str, event_type: str) -> bool:
        return False


class NoSecrets:
    async def resolve(self, workspace_id: str, names: set[str], context: dict[str, str]) -> dict[str, str]:
        return {}


class AdmitAll:
    async def screen(self, queue: Queue, jobs: list[Job]) -> list[Job]:
        return jobs

    def on_insert(self, conn: Conn, queue: Queue, jobs: list[Job]) -> None:
        return None

    async def retry(self, queue: Queue, job_id: str, actor: str) -> Job | None:
        return None

    def on_cancel(self, conn: Conn, job: Job, actor: str) -> None:
        return None
