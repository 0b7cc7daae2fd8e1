"""Components that gather in memory and write it every so often, and once more on the way out (the keys' last
use, the delivery tallies)."""

from __future__ import annotations

import asyncio
import logging
from typing import Self

log = logging.getLogger("rotor_lite")


class PeriodicFlush:
    """An async context manager that calls `flush` every `every_s` seconds while entered, and at its exit.

    A failed flush is logged and tried again at the next one: what it would have written stays gathered
    only if `flush` keeps it.
    """

    def __init__(self, name: str, every_s: float) -> None:
        self._name, self._every_s = name, every_s
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._flush_periodically(), name=self._name)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()

    async def flush(self) -> None:
        raise NotImplementedError

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            try:
                await self.flush()
            except Exception:
                log.exception("%s: a periodic write failed", self._name)
