"""A workflow app run as its own process (`python -m uvicorn tests.e2e.wf_crash_app:app`), so tests can kill it.

Every side effect is appended as a line to the file `$WF_MARKS`; `$WF_CRASH_IN` names a step that
kills the whole app process (os._exit) the first time it runs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from rotor_lite.sdk import create_function, serve_workflow
from rotor_lite.sdk.workflows import Context, Step

MARKS = Path(os.environ.get("WF_MARKS", "marks.txt"))


def mark(text: str) -> None:
    with MARKS.open("a") as marks:
        marks.write(text + "\n")
        marks.flush()


def side_effect(name: str, seconds: float = 0.0) -> str:
    mark(f"{name}:start")
    if os.environ.get("WF_CRASH_IN") == name and not Path(f"{MARKS}.crashed").exists():
        Path(f"{MARKS}.crashed").touch()
        os._exit(1)  # the app dies in the middle of the step
    time.sleep(seconds)
    mark(f"{name}:end")
    return f"{name}-done"


@create_function(id="crashy", trigger={"event": "crashy.go"}, retries=10)
async def crashy(ctx: Context, step: Step) -> Any:
    first = await step.run("first", side_effect, "first")
    second = await step.run("second", side_effect, "second", ctx.event.data.get("seconds", 0))
    await step.sleep("pause", "100ms")
    third = await step.run("third", side_effect, "third")
    return [first, second, third]


app = serve_workflow(functions=[crashy], signing_key=os.environ.get("ROTOR_SIGNING_KEY", "unset"))
