"""`rotor-lite serve`: run the API and the engine."""

from __future__ import annotations

import signal
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
import uvicorn

from rotor_lite.api.app import create_app
from rotor_lite.api.request_log import log_requests
from rotor_lite.api.server import listening_socket, uvicorn_config
from rotor_lite.config import Settings, load_settings
from rotor_lite.engine.runtime import Runtime, claim_data_dir
from rotor_lite.errors import ConfigError
from rotor_lite.logs import configure_logging


@click.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Path to rotor.toml (default: ./rotor.toml if present).")
@click.option("--host", help="Address to listen on (server.host, default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (server.port, default 8080).")
@click.option("--data-dir", help="Where the SQLite database lives (storage.data_dir, default ./data).")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]), help="Log verbosity.")
def serve(*, config_file: str | None, host: str | None, port: int | None, data_dir: str | None, log_level: str) -> None:
    """Run the rotor-lite server (API, dispatcher, sweeper) in this process."""
    try:
        settings = load_settings(
            config_file, overrides={("server", "host"): host, ("server", "port"): port, ("storage", "data_dir"): data_dir}
        )
        configure_logging(log_level, settings.server.log_format)
        code = run_server(settings, log_level)
    except ConfigError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    sys.exit(code)


def run_server(settings: Settings, log_level: str = "info") -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code.

    The data directory's lock and the port are taken before the database is opened, so a busy one
    ends the start with a ConfigError before the admin key of a first start is made (and shown once).
    """
    data_lock = claim_data_dir(settings.data_path)
    sock = listening_socket(settings.server.host, settings.server.port)
    runtimes: list[Runtime] = []

    def on_ready(runtime: Runtime) -> None:
        runtimes.append(runtime)
        _announce(runtime)

    app = log_requests(create_app(settings, on_ready=on_ready, data_lock=data_lock))
    server = _Server(uvicorn_config(app, settings.server, log_level=log_level), runtimes)
    with _exit_normally_on_signals():
        server.run(sockets=[sock])
    return 0 if server.started else 1


class _Server(uvicorn.Server):
    """uvicorn, telling the runtime when its shutdown begins: it waits for the requests in flight, and
    long-polling lease requests must answer at once rather than hold the stop up to their end."""

    def __init__(self, config: uvicorn.Config, runtimes: list[Runtime]) -> None:
        super().__init__(config)
        self._runtimes = runtimes

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for runtime in self._runtimes:
            runtime.stop_waiting()
        await super().shutdown(sockets)


@contextmanager
def _exit_normally_on_signals() -> Iterator[None]:
    """Let a graceful stop end in `return 0` instead of death by signal.

    After its shutdown, uvicorn re-raises the SIGTERM/SIGINT it caught under the handler that was
    installed before it started; with the default handler the process dies with -SIGTERM even
    though every delivery was drained and recorded.
    """
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _announce(runtime: Runtime) -> None:
    created = runtime.bootstrap_key
    if created is not None and not runtime.settings.auth.bootstrap_api_key:
        click.echo(
            f"Created workspace '{created.workspace_name}' ({created.workspace_id}).\n"
            f"Admin API key (shown once, save it now): {created.key}",
            err=True,
        )
    click.echo(f"rotor-lite listening on http://{runtime.settings.server.host}:{runtime.settings.server.port}", err=True)
