"""`rotor worker module:processor --queue Q`: process the jobs of a pull queue in this process."""

from __future__ import annotations

import asyncio
import importlib
import sys
from typing import Any

import click

from rotor_lite.cli.client.context import load_config, resolve_api_key, resolve_api_url, resolve_workspace

__all__ = ["worker"]


@click.command("worker")
@click.argument("processor")
@click.option("--queue", required=True, help="The pull queue (a queue without a callback_url) to take jobs from.")
@click.option("--concurrency", default=5, show_default=True, type=click.IntRange(1, 100), help="Jobs processed at once.")
@click.option("--drain-timeout", default=30.0, show_default=True, type=click.FloatRange(0),
              help="Seconds the jobs in flight get to finish after SIGTERM or SIGINT.")
@click.option("--lease-seconds", default=30.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="How long a job stays leased without a heartbeat (the worker heartbeats every third of it).")
@click.option("--api-key", metavar="KEY", help="API key (else $ROTOR_API_KEY, else the saved key).")
@click.option("--api-url", metavar="URL", help="API base URL (else $ROTOR_API_URL, else the saved URL).")
@click.option("--workspace", metavar="WORKSPACE", help="With a team key: the workspace to act in (else $ROTOR_WORKSPACE).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]), help="Log verbosity.")
def worker(
    *, processor: str, queue: str, concurrency: int, drain_timeout: float, lease_seconds: float,
    api_key: str | None, api_url: str | None, workspace: str | None, log_level: str,
) -> None:
    """Process the jobs of a pull queue in this process with your own function (RotorWorker).

    PROCESSOR is `module:function`, looked up from the current directory: an async function that takes
    the job (`job.id`, `job.data`, `job.attempt`, `job.tags`) and returns its result; an exception fails
    the job (retried after the queue's backoff). SIGTERM or SIGINT stops leasing, lets the jobs in
    flight finish within --drain-timeout, and exits 0.
    """
    from rotor_lite.logs import configure_logging
    from rotor_lite.sdk import RotorAPIError, RotorWorker

    configure_logging(log_level, "text")
    config = {} if api_key and api_url else load_config()
    runner = RotorWorker(
        queue, _import(processor), concurrency=concurrency, drain_timeout=drain_timeout, lease_seconds=lease_seconds,
        api_key=resolve_api_key(api_key, config), base_url=resolve_api_url(api_url, config),
        workspace=resolve_workspace(workspace, config),
    )
    try:
        asyncio.run(runner.run())
    except RotorAPIError as exc:
        raise click.ClickException(f"[{exc.code}] {exc.message}") from exc


def _import(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise click.BadParameter("give it as module:function, e.g. myapp.jobs:handle", param_hint="PROCESSOR")
    sys.path.insert(0, "")  # the module is looked up from the current directory, as `python -m` does
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot load {target}: {exc}", param_hint="PROCESSOR") from exc
    if not callable(found):
        raise click.BadParameter(f"{target} is not a function", param_hint="PROCESSOR")
    return found
