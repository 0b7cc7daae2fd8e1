"""serve_workflow's app mounted in Litestar, Starlette and FastAPI, served by uvicorn, called over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar, asgi, get

from rotor_lite.sdk import create_function, serve_workflow
from rotor_lite.sdk.workflows import Context, Step, WorkflowApp
from tests.helpers import Receiver
from tests.unit.sdk.workflow_kit import SIGNING_KEY, run_call, saved_from, served, signed

pytest.importorskip("starlette")
pytest.importorskip("fastapi")

from fastapi import FastAPI  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Mount, Route  # noqa: E402


def greet(name: str) -> str:
    return f"hello {name}"  # a sync step: it runs in a worker thread


@create_function(id="greeter", trigger={"event": "user.created"})
async def greeter(ctx: Context, step: Step) -> Any:
    greeting = await step.run("greet", greet, ctx.event.data["userId"])
    parts = await asyncio.gather(step.run("a", str.upper, "a"), step.run("b", str.upper, "b"))
    return {"greeting": greeting, "parts": parts}


def workflow_app(**options: Any) -> WorkflowApp:
    return serve_workflow(functions=[greeter], signing_key=SIGNING_KEY, **options)


def drive(url: str) -> dict[str, Any]:
    """Call the app as rotor-lite would until the run completes; parallel steps run one target each."""
    saved: dict[str, Any] = {}
    with httpx.Client(timeout=10) as client:
        for _ in range(10):
            body = msgspec.json.encode(run_call("greeter", saved))
            reply = client.post(url, content=body, headers=signed(body))
            assert reply.status_code == 200, reply.text
            answer = reply.json()
            if answer["type"] == "complete":
                return dict(answer["output"])
            if answer["type"] == "step":
                saved[answer["key"]] = saved_from(answer)
            else:
                saved.update(run_targets(client, url, saved, answer["steps"]))
    raise AssertionError("the run did not complete")


def run_targets(client: httpx.Client, url: str, saved: dict[str, Any], planned: list[dict[str, Any]]) -> dict[str, Any]:
    pending = {**saved, **{step["key"]: {"status": "pending"} for step in planned}}
    outcomes = {}
    for step in planned:
        body = msgspec.json.encode(run_call("greeter", pending, target=step["key"]))
        answer = client.post(url, content=body, headers=signed(body)).json()
        outcomes[answer["key"]] = saved_from(answer)
    return outcomes


EXPECTED = {"greeting": "hello u_1", "parts": ["A", "B"]}


@get("/health", sync_to_thread=False)
def health() -> str:
    return "ok"


def test_mounted_in_litestar() -> None:
    app = Litestar(route_handlers=[health, asgi("/api/rotor", is_mount=True, copy_scope=True)(workflow_app())])
    with served(app) as base:
        assert drive(f"{base}/api/rotor") == EXPECTED
        assert httpx.get(f"{base}/health").text == "ok"


def test_mounted_in_starlette() -> None:
    rotor = workflow_app()
    routes = [
        Route("/health", lambda request: PlainTextResponse("ok")),
        Route("/api/rotor", rotor, methods=["POST"]),  # an ASGI app as a route: the exact path, no slash
        Mount("/rotor", app=rotor),  # a mount answers below it: serve_url ends with "/"
    ]
    with served(Starlette(routes=routes)) as base:
        assert drive(f"{base}/api/rotor") == EXPECTED
        assert drive(f"{base}/rotor/") == EXPECTED
        assert httpx.get(f"{base}/health").text == "ok"


def test_mounted_in_fastapi_which_registers_it_from_its_lifespan(receiver: Receiver) -> None:
    rotor = workflow_app(register_url=receiver.url(""), serve_url="http://127.0.0.1:8000/api/rotor/", api_key="rt_ws_k")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await rotor.register()  # FastAPI does not pass its lifespan on to mounted apps
        yield

    app = FastAPI(lifespan=lifespan)
    app.mount("/api/rotor", rotor)
    with served(app) as base:
        assert drive(f"{base}/api/rotor/") == EXPECTED
    assert [request.json()["id"] for request in receiver.for_path("/v1/functions")] == ["greeter"]
