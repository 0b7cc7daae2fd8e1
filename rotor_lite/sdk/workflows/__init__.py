"""Durable workflows, the app's side: write functions with `create_function`, serve them with `serve_workflow`.

    from rotor_lite.sdk import create_function, serve_workflow

    @create_function(id="welcome-sequence", trigger={"event": "user.created"})
    async def welcome(ctx, step):
        profile = await step.run("fetch-profile", fetch_profile, ctx.event.data["userId"])
        await step.sleep("initial-wait", "24h")
        await step.run("send-welcome", send_welcome, profile)
        return {"sent": True}

    app = serve_workflow(functions=[welcome], signing_key=os.environ["ROTOR_SIGNING_KEY"])

rotor-lite drives each run by calling the app (docs/workflow-protocol.md); the app runs the function
from the top and every step with a saved outcome returns it without running again.
"""

from __future__ import annotations

from rotor_lite.sdk.workflows._app import WorkflowApp, serve_workflow
from rotor_lite.sdk.workflows._function import Context, WorkflowFunction, create_function
from rotor_lite.sdk.workflows._protocol import Event
from rotor_lite.sdk.workflows._step import Step

__all__ = ["Context", "Event", "Step", "WorkflowApp", "WorkflowFunction", "create_function", "serve_workflow"]
