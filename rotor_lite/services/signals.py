"""`POST /v1/signals/:id/complete`: resume the one run waiting for a named signal."""

from __future__ import annotations

import msgspec

from rotor_lite.errors import Conflict, Gone, NotFound, ValidationError
from rotor_lite.models import Principal, StepStatus
from rotor_lite.schemas import SignalComplete
from rotor_lite.services import runs as run_service
from rotor_lite.services.core import Core
from rotor_lite.services.paging import decode_text_cursor, encode_text_cursor
from rotor_lite.store import runs as store
from rotor_lite.store.runs import AwaitedSignal
from rotor_lite.store.contract import Conn

__all__ = ["MAX_SIGNAL_DATA_BYTES", "SignalNotFound", "awaited_signals", "complete_signal"]

MAX_SIGNAL_DATA_BYTES = 512 * 1024


class SignalNotFound(NotFound):
    def __init__(self, signal: str) -> None:
        super().__init__(f"signal '{signal}' not found", {"signal": signal})


async def complete_signal(core: Core, principal: Principal, signal: str, spec: SignalComplete) -> str:
    """Resume the run waiting on `signal` with `data`; returns its id.

    404: nobody waits on it in this workspace (or its run was cancelled); 409: `run_id` names another
    run than the one waiting; 410: it was already resolved or timed out.
    """
    if spec.data is msgspec.UNSET:
        raise ValidationError("data is required", field="data")
    data = msgspec.json.encode(spec.data)
    if len(data) > MAX_SIGNAL_DATA_BYTES:
        raise ValidationError(f"data is larger than {MAX_SIGNAL_DATA_BYTES} bytes", field="data")
    return await core.db.write(lambda conn: _complete(core, conn, principal.workspace_id, signal, spec.run_id, data))


def _complete(
    core: Core, conn: Conn, workspace_id: str, signal: str, run_id: str | None, data: bytes
) -> str:
    found = store.signal_waiter(conn, workspace_id, signal)
    if found is None:
        if store.signal_resolution(conn, workspace_id, signal) is not None:
            raise Gone(f"signal '{signal}' was already resolved or timed out", {"signal": signal})
        raise SignalNotFound(signal)
    waiter, waiting_run = found
    if run_id is not None and run_id != waiting_run:
        raise Conflict(f"signal '{signal}' is held by another run", {"signal": signal})
    now = core.clock.now_ms()
    if not store.end_step(conn, waiter.step_rowid, StepStatus.COMPLETED, now, output=data):
        # Another request (on another node) completed it first, or its wait timed out meanwhile.
        raise Gone(f"signal '{signal}' was already resolved or timed out", {"signal": signal})
    store.delete_waiter_of_step(conn, waiter.step_rowid)
    store.resolve_signal(conn, workspace_id, signal, waiting_run, "completed", now)
    run_service.continue_run(core, conn, waiter.run_rowid)
    return waiting_run



async def awaited_signals(
    core: Core, principal: Principal, *, limit: int, cursor: str | None
) -> tuple[list[AwaitedSignal], str | None]:
    """The signals runs of the workspace wait on (the workflows' approvals), in signal order."""
    found = await store.awaited_signals(core.db, principal.workspace_id, after=decode_text_cursor(cursor), limit=limit + 1)
    return found[:limit], encode_text_cursor(found[limit - 1].signal) if len(found) > limit else None
