"""The delivery helpers of one server: processes that send its HTTP (`[delivery] processes = N`).

The server keeps the writer, the claims, the slots and the leases; a helper gets ready-to-send
deliveries in batches over a socket and gives back outcomes in batches (engine.frames). A claim's
whole batch goes to the least loaded helper in one frame, and the outcomes of each returned frame
go straight to their owner's callback, without a task or a future per delivery in this process.

A helper that dies (crash, kill -9) is noticed at the end of its socket: what it held is reported
lost (the dispatcher frees the slots; the jobs come back when their leases run out, the guarantee
that also covers the server's own death), and it is started again after a backoff.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from rotor_lite.engine.frames import Batch, FrameError, Setup, decode_from_helper, encode, read_frame
from rotor_lite.engine.sending import Answer, Delivery, Outcome, Post, SenderSettings
from rotor_lite.logs import LogFormat
from rotor_lite.models import DeliveryHelper

__all__ = ["LOST", "HelperPool", "helper_count"]

log = logging.getLogger("rotor_lite.helpers")
T = TypeVar("T")
R = TypeVar("R")
_FIRST_BACKOFF_S = 0.1
_MAX_BACKOFF_S = 5.0
_HEALTHY_AFTER_S = 10.0  # a helper that ran this long starts the next restart's backoff afresh
_STOP_GRACE_S = 5.0
LOST = "the delivery helper exited before it answered"


def helper_count(setting: int | str, cpus: int | None = None) -> int:
    """Helpers for `[delivery] processes`: a number as given; `auto` one per core beyond the first
    (the server's own process keeps one core busy with the API and the writer), at least one."""
    if setting != "auto":
        return int(setting)
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus - 1)


class _Waiting:
    """An item sent to a helper: the callbacks its result goes to."""

    __slots__ = ("ticket", "done", "lost")

    def __init__(self, ticket: Any, done: Callable[[Any, Any], None], lost: Callable[[Any], None]) -> None:
        self.ticket, self.done, self.lost = ticket, done, lost


class _Helper:
    """One helper process, started again whenever it ends until the pool stops."""

    def __init__(self, index: int, setup: Setup) -> None:
        self.index, self._setup = index, setup
        self.pid: int | None = None
        self.restarts = 0
        self.delivered = 0
        self.waiting: dict[int, _Waiting] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._queued: list[bytes] = []  # frames made while no process was connected
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._process: asyncio.subprocess.Process | None = None

    @property
    def alive(self) -> bool:
        return self._writer is not None

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"rotor-helper-{self.index}")

    def send(self, frame: bytes) -> None:
        if self._writer is not None:
            self._writer.write(frame)
        else:
            self._queued.append(frame)

    async def stop(self, grace_s: float) -> None:
        """Close the socket (the helper ends at its end of it), then wait for the process, killing it if it lingers."""
        self._stopping = True
        if self._writer is not None:
            self._writer.close()
        process = self._process
        if process is not None and process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), grace_s)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _supervise(self) -> None:
        backoff = _FIRST_BACKOFF_S
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._run_once()
            except Exception:
                log.exception("delivery helper %d failed", self.index)
            if self._stopping:
                return
            if time.monotonic() - started > _HEALTHY_AFTER_S:
                backoff = _FIRST_BACKOFF_S
            self.restarts += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    async def _run_once(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "rotor_lite.engine.helper", str(theirs.fileno()), str(os.getpid()),
                pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the helper's copy is its own now: its end of the socket dies with it
        reader, writer = await asyncio.open_connection(sock=ours)
        self.pid = self._process.pid
        try:
            self._connected(writer)
            await self._read(reader)
        finally:
            self._writer = None
            writer.close()
            code = await self._process.wait() if self._stopping else await _exit_code(self._process)
            self._lose_waiting(code)

    def _connected(self, writer: asyncio.StreamWriter) -> None:
        writer.write(encode(self._setup))
        for frame in self._queued:
            writer.write(frame)
        self._queued.clear()
        self._writer = writer
        log.info("delivery helper started", extra={"helper": self.index, "pid": self.pid})

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while (payload := await read_frame(reader)) is not None:
                self._settle(payload)
        except (FrameError, ConnectionError) as exc:
            log.error("delivery helper %d sent a broken frame: %s", self.index, exc)

    def _settle(self, payload: bytes) -> None:
        results = decode_from_helper(payload)
        for number, outcome in results.outcomes:
            self._finish(number, outcome)
            self.delivered += 1
        for number, answer in results.answers:
            self._finish(number, answer)

    def _finish(self, number: int, result: Outcome | Answer) -> None:
        waiting = self.waiting.pop(number, None)
        if waiting is None:
            return
        try:
            waiting.done(waiting.ticket, result)
        except Exception:
            log.exception("a delivery's result could not be handed on", extra={"helper": self.index})

    def _lose_waiting(self, code: int | None) -> None:
        lost, self.waiting = self.waiting, {}
        if not self._stopping:
            log.warning("delivery helper exited; starting it again", extra={
                "helper": self.index, "pid": self.pid, "exit_code": code, "lost": len(lost)})
        for waiting in lost.values():
            try:
                waiting.lost(waiting.ticket)
            except Exception:
                log.exception("a lost delivery could not be handed back", extra={"helper": self.index})


async def _exit_code(process: asyncio.subprocess.Process) -> int | None:
    """The helper's exit code once it is gone (killed after a short wait: its socket is closed already)."""
    try:
        return await asyncio.wait_for(process.wait(), 2.0)
    except TimeoutError:
        process.kill()
        return await process.wait()


class HelperPool:
    """Starts `count` helpers and keeps them running; hands them deliveries and posts."""

    def __init__(self, count: int, sender: SenderSettings, *, log_level: str = "info", log_format: LogFormat = "text") -> None:
        setup = Setup(sender=sender, log_level=log_level, log_format=log_format)
        self._helpers = [_Helper(index, setup) for index in range(count)]
        self._numbers = 0

    async def __aenter__(self) -> HelperPool:
        for helper in self._helpers:
            helper.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(helper.stop(_STOP_GRACE_S) for helper in self._helpers))

    def deliver(self, batch: Sequence[tuple[Delivery, T]], done: Callable[[T, Outcome], None],
                lost: Callable[[T], None]) -> None:
        """Send the batch to one helper in one frame; each item's outcome goes to `done`, or to `lost`
        if the helper dies first."""
        if not batch:
            return
        helper = self._least_loaded()
        items = []
        for delivery, ticket in batch:
            number = self._next_number()
            helper.waiting[number] = _Waiting(ticket, done, lost)
            items.append((number, delivery))
        helper.send(encode(Batch(deliveries=items)))

    async def deliver_one(self, delivery: Delivery) -> Outcome | None:
        """One delivery, awaited: its outcome, or None when the helper died holding it."""
        return await _awaited(lambda done, lost: self.deliver([(delivery, None)], done, lost))

    async def post(self, post: Post) -> Answer:
        """POST through a helper: its status and body, or why there is none."""
        def send(done: Callable[[None, Answer], None], lost: Callable[[None], None]) -> None:
            helper = self._least_loaded()
            number = self._next_number()
            helper.waiting[number] = _Waiting(None, done, lost)
            helper.send(encode(Batch(posts=[(number, post)])))

        return await _awaited(send) or Answer(failure="network", error=LOST)

    def health(self) -> list[DeliveryHelper]:
        return [
            DeliveryHelper(index=h.index, pid=h.pid, alive=h.alive, in_flight=len(h.waiting), restarts=h.restarts,
                           delivered=h.delivered)
            for h in self._helpers
        ]

    def _least_loaded(self) -> _Helper:
        """The live helper with the fewest items in flight (one that is restarting queues what it gets)."""
        return min(self._helpers, key=lambda h: (not h.alive, len(h.waiting)))

    def _next_number(self) -> int:
        self._numbers += 1
        return self._numbers


async def _awaited(send: Callable[[Callable[[None, R], None], Callable[[None], None]], None]) -> R | None:
    """The result `send` hands to its `done` callback, or None if it calls `lost`."""
    future: asyncio.Future[R | None] = asyncio.get_running_loop().create_future()

    def done(_: None, result: R | None) -> None:
        if not future.done():  # a cancelled wait: the late result has nobody to go to
            future.set_result(result)

    send(done, lambda _: done(None, None))
    return await future
