"""`rotor-lite workflows serve module:app`: run an app made with `serve_workflow` (the app's side)."""

from __future__ import annotations

import sys

import click

__all__ = ["workflows"]


@click.group("workflows")
def workflows() -> None:
    """Serve durable workflow functions from your own code (manage runs with `rotor runs ...`)."""


@workflows.command("serve")
@click.argument("app")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=3000, show_default=True, type=int, help="Port to listen on.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]), help="Log verbosity.")
def serve_app(*, app: str, host: str, port: int, log_level: str) -> None:
    """Serve APP (`module:attribute`, an app made with serve_workflow) with uvicorn."""
    import uvicorn  # only this command needs it

    if ":" not in app:
        raise click.BadParameter("give it as module:attribute, e.g. myapp.workflows:app", param_hint="APP")
    sys.path.insert(0, "")  # the module is looked up from the current directory, as uvicorn's own CLI does
    uvicorn.run(app, host=host, port=port, log_level=log_level, lifespan="on")
