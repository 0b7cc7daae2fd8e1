"""A delivery helper: a process that `rotor-lite serve` starts to send HTTP for it (`[delivery] processes`).

    python -m rotor_lite.engine.helper <socket fd> <server pid>

It talks to the server over one socket: a `Setup` frame, then `Batch` frames in; `Results` frames
out, one per pass of its event loop, holding whatever finished in that pass. It holds nothing but
what it was given: the server keeps every lease, so a helper that dies loses no job.

It dies with the server: at the end of the socket (the server closed it, or the server is gone), and
by PR_SET_PDEATHSIG should the server be killed while this loop is stuck. SIGINT and SIGTERM are the
server's to act on (a Ctrl-C reaches the whole process group): the server drains, then closes the socket.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
import sys

from rotor_lite.engine.frames import Batch, Results, Setup, decode_to_helper, encode, read_frame
from rotor_lite.engine.sending import Delivery, Post, Sender
from rotor_lite.logs import configure_logging

log = logging.getLogger("rotor_lite.helper")
_PR_SET_PDEATHSIG = 1


class _Helper:
    """Runs each item of a batch as a task and sends back what finished, batched per loop pass."""

    def __init__(self, sender: Sender, writer: asyncio.StreamWriter) -> None:
        self._sender, self._writer = sender, writer
        self._results = Results()
        self._flushing = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self, reader: asyncio.StreamReader) -> None:
        while (payload := await read_frame(reader)) is not None:
            message = decode_to_helper(payload)
            if isinstance(message, Batch):
                self._start(message)
        for task in self._tasks:  # the server is gone or stopping: nobody is left to read an answer
            task.cancel()

    def _start(self, batch: Batch) -> None:
        for number, delivery in batch.deliveries:
            self._spawn(self._deliver(number, delivery))
        for number, post in batch.posts:
            self._spawn(self._post(number, post))

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, number: int, delivery: Delivery) -> None:
        outcome = await self._sender.deliver(delivery)  # first: a flush during the send replaces self._results
        self._results.outcomes.append((number, outcome))
        self._flush_soon()

    async def _post(self, number: int, post: Post) -> None:
        answer = await self._sender.post(post)
        self._results.answers.append((number, answer))
        self._flush_soon()

    def _flush_soon(self) -> None:
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = False
        results, self._results = self._results, Results()
        if not self._writer.is_closing():
            self._writer.write(encode(results))


async def _run(fd: int) -> None:
    reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=fd))
    first = await read_frame(reader)
    if first is None:
        return
    setup = decode_to_helper(first)
    if not isinstance(setup, Setup):
        raise SystemExit("a delivery helper must be set up first")
    configure_logging(setup.log_level, setup.log_format)
    async with Sender(setup.sender) as sender:
        await _Helper(sender, writer).serve(reader)
    writer.close()


def _die_with(server_pid: int) -> None:
    """Be killed when the server dies, even if this process is too busy to notice the socket's end."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != server_pid:  # it died before prctl took effect
        raise SystemExit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def main() -> None:
    fd, server_pid = int(sys.argv[1]), int(sys.argv[2])
    _die_with(server_pid)
    try:
        import uvloop  # the server's loop too, when installed
    except ImportError:
        asyncio.run(_run(fd))
    else:
        uvloop.run(_run(fd))


if __name__ == "__main__":
    main()
