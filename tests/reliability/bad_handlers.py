"""Callback handlers that misbehave, served in their own process: `python -m tests.reliability.bad_handlers PORT`.

POST /slow answers 200 after a second, /hang never answers, /reset closes the connection
without an answer (an RST), /fail500 answers 500. Prints "ready" once listening on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys

from aiohttp import web

SLOW_SECONDS = 1.0


async def slow(request: web.Request) -> web.Response:
    await request.read()
    await asyncio.sleep(SLOW_SECONDS)
    return web.json_response({"ok": True})


async def hang(request: web.Request) -> web.Response:
    await request.read()
    await asyncio.sleep(3600)
    return web.json_response({"ok": True})


async def reset(request: web.Request) -> web.Response:
    await request.read()
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport else None
    if sock is not None:  # linger 0: close() sends an RST instead of a FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if transport is not None:
        transport.abort()
    raise ConnectionResetError


async def fail500(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"error": "boom"}, status=500)


def main() -> None:
    app = web.Application()
    app.router.add_post("/slow", slow)
    app.router.add_post("/hang", hang)
    app.router.add_post("/reset", reset)
    app.router.add_post("/fail500", fail500)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, handle_signals=True,
                print=lambda *_: print("ready", flush=True))


if __name__ == "__main__":
    main()
