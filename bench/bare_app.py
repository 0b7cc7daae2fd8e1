"""The HTTP ceiling for enqueue: a bare Litestar app that decodes the same bodies with msgspec and answers 201.

    python bench/bare_app.py PORT

Served by uvicorn exactly as `rotor-lite serve` is (httptools, uvloop when installed,
no access log), so the gap between it and rotor-lite is rotor-lite's own work.
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec
import uvicorn
from litestar import Litestar, Request, Response, post


class Job(msgspec.Struct, forbid_unknown_fields=True):
    payload: Any = None
    jobId: str | None = None  # noqa: N815 - the API's field name
    delay: int | str | None = None
    tags: list[str] | None = None
    priority: int = 0


class Batch(msgspec.Struct, forbid_unknown_fields=True):
    jobs: list[Job]


_CREATED = b'{"id":"job_00000000000000000000000000000000","state":"waiting"}'


@post("/v1/queues/{name:str}/jobs", status_code=201)
async def enqueue(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
    """Decode one job; answer 201."""
    msgspec.json.decode(await request.body(), type=Job)
    return Response(_CREATED, status_code=201, media_type="application/json")


@post("/v1/queues/{name:str}/jobs/batch", status_code=201)
async def enqueue_batch(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
    """Decode a batch; answer 201."""
    batch = msgspec.json.decode(await request.body(), type=Batch)
    return Response(b'{"accepted":%d}' % len(batch.jobs), status_code=201, media_type="application/json")


app = Litestar(route_handlers=[enqueue, enqueue_batch], debug=False)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
                loop="auto", http="httptools", backlog=4096)
