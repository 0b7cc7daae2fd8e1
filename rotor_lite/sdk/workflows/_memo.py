"""One call's view of a run: step keys, the saved outcomes, and the steps the function reached.

A step primitive asks `Memo.outcome` for its outcome. A saved outcome returns (or raises) at once; any
other step blocks the function for the rest of the call and is recorded, so that the driver can
answer rotor-lite with what the function reached.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from rotor_lite.sdk.errors import NonRetriableError, workflow_error
from rotor_lite.sdk.workflows._protocol import ErrorInfo, PlannedStep, SavedStep

__all__ = ["Memo", "Reached"]

# Rounds of the event loop without a newly reached step after which the function counts as settled:
# enough for the tasks that asyncio.gather starts (and gathers nested in them) to reach their steps.
SETTLE_ROUNDS = 5

# The key of the run step whose callable is executing in this context: a step reached inside it is nested.
_executing: contextvars.ContextVar[str | None] = contextvars.ContextVar("rotor_lite_executing_step", default=None)


@dataclass(frozen=True, slots=True)
class Reached:
    """A step the function reached that has no outcome yet; `action` runs a `run` step's callable."""

    key: str
    id: str
    type: str
    opts: dict[str, Any]
    action: Callable[[], Awaitable[Any]] | None = None

    def planned(self) -> PlannedStep:
        return PlannedStep(key=self.key, id=self.id, type=self.type, opts=self.opts)

    async def execute(self) -> Any:
        """Run the step's callable, marked as executing so that a step reached inside it is refused."""
        assert self.action is not None
        token = _executing.set(self.key)
        try:
            return await self.action()
        finally:
            _executing.reset(token)


@dataclass(slots=True)
class Memo:
    """Step keys and outcomes for one call; `target` is the step key this call must execute, if any."""

    saved: Mapping[str, SavedStep]
    target: str | None = None
    new: list[Reached] = field(default_factory=list)
    target_step: Reached | None = None
    blocked: asyncio.Event = field(default_factory=asyncio.Event)
    _uses: Counter[str] = field(default_factory=Counter)
    _blocks: int = 0

    def next_key(self, step_id: str) -> str:
        """The key of the next use of `step_id`: `"<id>:<n>"`, n counting uses in the order reached."""
        outer = _executing.get()
        if outer is not None:
            raise NonRetriableError(f"step {step_id!r} was reached inside step {outer!r}: steps cannot be nested")
        self._uses[step_id] += 1
        return f"{step_id}:{self._uses[step_id]}"

    async def outcome(self, reached: Reached) -> Any:
        """The saved output of `reached`; raises its saved error; blocks when it has none or is the target."""
        if reached.key == self.target:
            self.target_step = reached
            await self._block()
        saved = self.saved.get(reached.key)
        if saved is None:
            self.new.append(reached)
            await self._block()
        if saved.status == "completed":
            return saved.output
        if saved.status == "failed":
            error = saved.error or ErrorInfo(name="StepError", message="the step failed")
            raise workflow_error(error.name, error.message)
        await self._block()

    async def settled(self) -> None:
        """Return once the event loop has gone SETTLE_ROUNDS rounds without the function reaching a step."""
        quiet, seen = 0, self._blocks
        while quiet < SETTLE_ROUNDS:
            await asyncio.sleep(0)
            quiet, seen = (quiet + 1, seen) if self._blocks == seen else (0, self._blocks)

    async def _block(self) -> NoReturn:
        self._blocks += 1
        self.blocked.set()
        await asyncio.get_running_loop().create_future()  # never resolved: the call ends first
        raise AssertionError("unreachable")
