"""The `rotor-lite` / `rotor` command: `serve`, offline admin commands, and the API client commands.

A command's module is imported when that command runs or shows its own help, never before: the
server's imports (Litestar, uvicorn, aiosqlite, aiohttp) take half a second, which `rotor --help`
and the client commands must not pay. `rotor --help` lists the commands from `COMMANDS` alone.
"""

from __future__ import annotations

import importlib

import click

from rotor_lite import __version__

__all__ = ["COMMANDS", "main"]

# name: (module:attribute, the first sentence of the command's help, shown by `rotor --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "admin": ("rotor_lite.cli.admin:admin",
              "Server administration: backups and counter rebuilds (the server may run), master-key rotation (stop it first)."),
    "alerts": ("rotor_lite.cli.client.alerts:alerts", "Show or set the workspace's failure alerts (email, Slack)."),
    "api-keys": ("rotor_lite.cli.client.api_keys:api_keys",
                 "Create, list, rotate and revoke API keys (through the API; offline: `rotor-lite keys create`)."),
    "approvals": ("rotor_lite.cli.client.approvals:approvals",
                  "Review, approve and reject jobs of queues that require approval."),
    "audit": ("rotor_lite.cli.client.audit:audit", "Show the audit log, newest first."),
    "events": ("rotor_lite.cli.client.workflows:events",
               "Send events: they start the functions they trigger and resume the runs waiting for them."),
    "functions": ("rotor_lite.cli.client.workflows:functions",
                  "Workflow functions: where each is served and what starts its runs."),
    "guardrails": ("rotor_lite.cli.client.guardrails:guardrails",
                   "Show and change the guardrails every job passes before it is dispatched."),
    "import": ("rotor_lite.cli.importers:import_group",
               "Import cron jobs and functions from other services (Vercel Cron, Inngest)."),
    "jobs": ("rotor_lite.cli.client.jobs:jobs", "Enqueue, inspect and manage jobs."),
    "keys": ("rotor_lite.cli.admin:keys", "Manage API keys (offline: works on the database file directly)."),
    "login": ("rotor_lite.cli.client.login:login", "Save an API key (and server URL) to ~/.rotor/config.json, mode 0600."),
    "mcp": ("rotor_lite.cli.mcp:mcp",
            "Serve rotor-lite's MCP tools over stdio, for AI tools (Claude Code, Claude Desktop, Cursor)."),
    "migrate": ("rotor_lite.cli.migrate:migrate",
                "Apply the database schema (SQLite data dir or PostgreSQL storage.url) and report what was applied."),
    "queues": ("rotor_lite.cli.client.queues:queues", "Create, inspect and manage queues."),
    "runs": ("rotor_lite.cli.client.workflows:runs", "Workflow runs: list them, see a run's steps, cancel, replay."),
    "schedules": ("rotor_lite.cli.client.schedules:schedules", "Create, inspect and manage cron schedules."),
    "secrets": ("rotor_lite.cli.client.secrets:secrets",
                "Create, list, rotate and delete secrets referenced as ${{ secrets.NAME }}."),
    "serve": ("rotor_lite.cli.serve:serve", "Run the rotor-lite server (API, dispatcher, sweeper) in this process."),
    "signals": ("rotor_lite.cli.client.workflows:signals", "Resume runs waiting in step.wait_for_signal."),
    "status": ("rotor_lite.cli.client.status:status", "Show API and database health, version, plan and quota."),
    "template": ("rotor_lite.cli.templates:template", "Scaffold a runnable starter project (workflows or callbacks) from a template."),
    "usage": ("rotor_lite.cli.client.status:usage", "Show this period's accepted jobs, in total and per queue."),
    "webhooks": ("rotor_lite.cli.client.webhooks:webhooks", "Create, inspect, test and delete webhook endpoints."),
    "worker": ("rotor_lite.cli.worker:worker",
               "Process the jobs of a pull queue in this process with your own function (RotorWorker)."),
    "workflows": ("rotor_lite.cli.workflows_app:workflows",
                  "Serve durable workflow functions from your own code (manage runs with `rotor runs ...`)."),
    "workspaces": ("rotor_lite.cli.client.workspaces:workspaces",
                   "List, inspect and create workspaces (through the API; `create --data-dir` works offline)."),
}


class _LazyGroup(click.Group):
    """Imports a subcommand when it is used; lists them all without importing any."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, _, attribute = COMMANDS[cmd_name][0].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, summary) for name, (_, summary) in sorted(COMMANDS.items())])


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rotor-lite")
def main() -> None:
    """rotor-lite: Rotor's durable job queues as one self-hosted process on SQLite."""
