"""A fake LLM provider on 127.0.0.1 for the brand-tone judge: Anthropic Messages and OpenAI chat routes.

It scores by the rubric: every phrase the rubric quotes ('Act now', "Limited time") that appears in the
message costs 0.4 from a score of 0.95. Modes make it fail: "error" (HTTP 500), "slow" (answers after
`delay` seconds), "garbage" (text that is not a verdict). `hold()` parks requests until `release()`.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import Any

from aiohttp import web

from tests.helpers import free_port

_QUOTED = re.compile(r"""['"“‘]([^'"”’]{2,60})['"”’]""")


def rubric_score(rubric: str, message: str) -> tuple[float, str]:
    """The fake judge's verdict: 0.95 less 0.4 per quoted rubric phrase found in the message."""
    hits = [p for p in _QUOTED.findall(rubric) if p.lower() in message.lower()]
    score = max(0.0, 0.95 - 0.4 * len(hits))
    return score, f"uses {', '.join(hits)}" if hits else "on brand"


class FakeLLM:
    """The provider server in its own thread; `requests` records each call's path, headers and body."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mode = "ok"
        self.delay = 0.0
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._gate: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.requests)

    def hold(self) -> None:
        """Park every request until `release()`."""
        self._loop.call_soon_threadsafe(self._make_gate)

    def release(self) -> None:
        self._loop.call_soon_threadsafe(lambda: self._gate.set() if self._gate else None)

    def _make_gate(self) -> None:
        self._gate = asyncio.Event()

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_post("/v1/chat/completions", self._openai)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    async def _verdict(self, request: web.Request, prompt: str) -> str | web.Response:
        body = await request.json()
        with self._lock:
            self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
        if self._gate is not None:
            await self._gate.wait()
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        if self.mode == "error":
            return web.json_response({"error": {"type": "overloaded_error"}}, status=500)
        if self.mode == "garbage":
            return "I think it is fine."
        rubric, _, message = prompt.partition("Message (a JSON job payload):")
        score, reason = rubric_score(rubric, message)
        return json.dumps({"score": score, "reason": reason})

    async def _anthropic(self, request: web.Request) -> web.Response:
        body = await request.json()
        answer = await self._verdict(request, body["messages"][0]["content"])
        if isinstance(answer, web.Response):
            return answer
        return web.json_response({"content": [{"type": "text", "text": answer}], "role": "assistant"})

    async def _openai(self, request: web.Request) -> web.Response:
        body = await request.json()
        answer = await self._verdict(request, body["messages"][-1]["content"])
        if isinstance(answer, web.Response):
            return answer
        return web.json_response({"choices": [{"message": {"role": "assistant", "content": answer}}]})
