"""The workflow app that `bench/workflows.py` serves in its own process (its own GIL):

    cd bench && ROTOR_SIGNING_KEY=… rotor-lite workflows serve wf_app:app --port N --log-level warning

Each `step.run` callable returns the wall-clock time at which it ran (epoch seconds), so a run's
output says when its steps ran; the benchmark sets those beside the server's step timings.
"""

from __future__ import annotations

import os
import time
from typing import Any

from rotor_lite.sdk import create_function, serve_workflow
from rotor_lite.sdk.workflows import Context, Step

CONTACT_EVENT = "bench.contact"


async def stamp() -> float:
    return time.time()


@create_function(id="three-steps", trigger={"event": "bench.three"})
async def three_steps(ctx: Context, step: Step) -> Any:
    """The throughput workflow: a step, a durable sleep (1 s unless the event says), a step."""
    first = await step.run("first", stamp)
    await step.sleep("pause", ctx.event.data.get("sleepMs", 1000) / 1000)
    second = await step.run("second", stamp)
    return [first, second]


@create_function(id="chain", trigger={"event": "bench.chain"})
async def chain(ctx: Context, step: Step) -> Any:
    """Three steps in a row: the step-to-step latency."""
    return [await step.run("one", stamp), await step.run("two", stamp), await step.run("three", stamp)]


@create_function(id="sleeper", trigger={"event": "bench.sleep"})
async def sleeper(ctx: Context, step: Step) -> Any:
    """Sleeps until the event's `wakeAt` (epoch ms)."""
    await step.sleep_until("nap", ctx.event.data["wakeAt"])
    return None


@create_function(id="waiter", trigger={"event": "bench.wait"})
async def waiter(ctx: Context, step: Step) -> Any:
    """Waits for the `bench.contact` event of its own contact, then runs a step."""
    contact = ctx.event.data["contactId"]
    await step.wait_for_event("wait", event=CONTACT_EVENT, match=f'data.contactId == "{contact}"', timeout="2h")
    return await step.run("after", stamp)


FUNCTIONS = [three_steps, chain, sleeper, waiter]
app = serve_workflow(functions=FUNCTIONS, signing_key=os.environ.get("ROTOR_SIGNING_KEY", "unset"))
