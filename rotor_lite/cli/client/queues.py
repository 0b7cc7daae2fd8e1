"""`rotor queues ...`: create, inspect, configure, pause, drain and delete queues."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from rotor_lite.cli.client.context import Session, client_command
from rotor_lite.cli.client.output import Output

__all__ = ["queues"]

F = TypeVar("F", bound=Callable[..., Any])

MAX_BACKOFF_DELAY_MS = 86_400_000  # the API's bound
COUNT_STATES = ("waiting", "delayed", "active", "completed", "failed", "pending_approval", "blocked", "cancelled")


@click.group("queues")
def queues() -> None:
    """Create, inspect and manage queues."""


def _parse_headers(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str] | None:
    headers: dict[str, str] = {}
    for item in values:
        name, separator, value = item.partition("=")
        if not separator or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", ctx=ctx, param=param)
        headers[name.strip()] = value
    return headers or None


def _parse_rate(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    count, separator, per = value.partition("/")
    if not separator or not count.strip().isdigit() or not per.strip():
        raise click.BadParameter(f"expected MAX/PER like 10/1s, got {value!r}", ctx=ctx, param=param)
    return int(count), per.strip()


def _grouping(settings: dict[str, Any], current_key: Callable[[], str | None]) -> dict[str, Any]:
    """The `fairness` and `rate_limit` arguments of the SDK call, from the grouping options (taken out of `settings`)."""
    key, rate, rate_key = (settings.pop(name, None) for name in ("fairness_key", "rate_limit", "rate_limit_key"))
    grouping: dict[str, Any] = {
        "fairness": False if settings.pop("no_fairness", None) else {"key": key} if key else None,
        "rate_limit": False if settings.pop("no_rate_limit", None) else None,
    }
    if rate is not None:
        rate_key = rate_key or key or current_key()
        if not rate_key:
            raise click.UsageError("--rate-limit needs a key: --rate-limit-key, or --fairness-key")
        grouping["rate_limit"] = {"key": rate_key, "max": rate[0], "per": rate[1]}
    return grouping


def queue_settings(*, on_create: bool) -> Callable[[F], F]:
    """The settings options of `create` and `update`; only `create` names the defaults (on update, unset is unchanged)."""

    def default(value: str) -> str:
        return f" (default {value})" if on_create else ""

    options = (
        click.option("--concurrency", type=click.IntRange(min=1), help=f"Max jobs delivered in parallel{default('1')}."),
        click.option("--retry-attempts", type=click.IntRange(min=1), help=f"Attempts before the DLQ{default('3')}."),
        click.option(
            "--backoff-type", type=click.Choice(["exponential", "fixed"]),
            help=f"How the wait before each retry grows{default('exponential')}.",
        ),
        click.option(
            "--backoff-delay", type=click.IntRange(min=0, max=MAX_BACKOFF_DELAY_MS), metavar="MS",
            help=f"Wait before the first retry, in milliseconds{default('2000')}.",
        ),
        click.option("--callback-url", metavar="URL", help="URL Rotor POSTs each job to."),
        click.option(
            "--callback-header",
            "callback_headers",
            multiple=True,
            metavar="NAME=VALUE",
            callback=_parse_headers,
            help="Header sent with every callback; repeat for several." + (" Replaces all of them." if not on_create else ""),
        ),
        click.option(
            "--rotate-callback-secret",
            is_flag=True,
            default=None,
            help="Mint a new signing secret (printed once).",
        ),
        click.option(
            "--approval-required/--no-approval-required",
            default=None,
            help=f"Hold every new job for human approval{default('no')}.",
        ),
        click.option("--timeout-seconds", type=click.IntRange(min=1), help=f"Callback deadline, seconds{default('30')}."),
        click.option("--fairness-key", metavar="KEY",
                     help="Serve the jobs of each key in turn: concurrencyKey, or payload.<path> (e.g. payload.tenantId)."),
        click.option("--rate-limit", metavar="MAX/PER", callback=_parse_rate,
                     help="Start at most MAX jobs of one key per PER, e.g. 10/1s (keyed by --rate-limit-key, else the fairness key)."),
        click.option("--rate-limit-key", metavar="KEY", help="The key --rate-limit counts by (else the fairness key)."),
        *(() if on_create else (
            click.option("--no-fairness", is_flag=True, default=None, help="Stop serving keys in turn."),
            click.option("--no-rate-limit", is_flag=True, default=None, help="Remove the per-key rate limit."),
        )),
    )

    def add(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return add


@queues.command("create")
@click.argument("name")
@queue_settings(on_create=True)
@client_command
def create_queue(
    session: Session, /, *, name: str, backoff_type: str | None, backoff_delay: int | None, **settings: Any
) -> None:
    """Create queue NAME."""
    given = {"type": backoff_type, "delay": backoff_delay}
    backoff = {key: value for key, value in given.items() if value is not None}  # the server fills in the rest
    grouping = _grouping(settings, lambda: None)
    with session.client() as rotor:
        queue = rotor.queues.create(name, default_job_options={"backoff": backoff} if backoff else None,
                                    **grouping, **settings)
    session.output.emit(queue, _render_saved("Created"))


@queues.command("list")
@client_command
def list_queues(session: Session, /) -> None:
    """List the workspace's queues."""
    with session.client() as rotor:
        response = rotor.queues.list()
    session.output.emit(response, render_queue_table)


@queues.command("get")
@click.argument("name")
@client_command
def get_queue(session: Session, /, *, name: str) -> None:
    """Show queue NAME: its configuration and job counts."""
    with session.client() as rotor:
        queue = rotor.queues.get(name)
    session.output.emit(queue, render_queue)


@queues.command("update")
@click.argument("name")
@queue_settings(on_create=False)
@click.option("--state", type=click.Choice(["active", "paused"]), help="Pause or resume dispatching.")
@client_command
def update_queue(
    session: Session, /, *, name: str, backoff_type: str | None, backoff_delay: int | None, **settings: Any
) -> None:
    """Change settings of queue NAME (options not given are left as they are)."""
    if backoff_type is None and backoff_delay is None and all(value is None for value in settings.values()):
        raise click.UsageError("Nothing to update: pass at least one option.")
    with session.client() as rotor:
        grouping = _grouping(settings, lambda: (rotor.queues.get(name).get("fairness") or {}).get("key"))
        options = None
        if backoff_type is not None or backoff_delay is not None:
            # The API sets type and delay together: the half not given keeps its current value.
            current = rotor.queues.get(name)["defaultJobOptions"]["backoff"]
            options = {"backoff": {"type": backoff_type or current["type"],
                                   "delay": current["delay"] if backoff_delay is None else backoff_delay}}
        queue = rotor.queues.update(name, default_job_options=options, **grouping, **settings)
    session.output.emit(queue, _render_saved("Updated"))


@queues.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@client_command
def delete_queue(session: Session, /, *, name: str, force: bool) -> None:
    """Delete queue NAME with all its jobs and schedules."""
    if not force:
        click.confirm(f"Delete queue {name!r} with all its jobs and schedules?", abort=True, err=True)
    with session.client() as rotor:
        rotor.queues.delete(name)
    session.output.emit({"name": name, "deleted": True}, lambda out, _: out.line(f"Deleted queue {name}."))


@queues.command("stats")
@click.argument("name")
@client_command
def queue_stats(session: Session, /, *, name: str) -> None:
    """Show job counts per state for queue NAME."""
    with session.client() as rotor:
        stats = rotor.queues.stats(name)
    session.output.emit(stats, render_counts)


@queues.command("pause")
@click.argument("name")
@client_command
def pause_queue(session: Session, /, *, name: str) -> None:
    """Stop dispatching jobs of queue NAME (new jobs are still accepted)."""
    with session.client() as rotor:
        queue = rotor.queues.pause(name)
    session.output.emit(queue, _render_state_change(name))


@queues.command("resume")
@click.argument("name")
@client_command
def resume_queue(session: Session, /, *, name: str) -> None:
    """Resume dispatching jobs of queue NAME."""
    with session.client() as rotor:
        queue = rotor.queues.resume(name)
    session.output.emit(queue, _render_state_change(name))


@queues.command("drain")
@click.argument("name")
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@client_command
def drain_queue(session: Session, /, *, name: str, force: bool) -> None:
    """Cancel every waiting and delayed job of queue NAME."""
    if not force:
        click.confirm(f"Cancel every waiting and delayed job in queue {name!r}?", abort=True, err=True)
    with session.client() as rotor:
        response = rotor.queues.drain(name)
    session.output.emit(response, lambda out, _: out.line(f"Drained queue {name}."))


@queues.command("retry-all")
@click.argument("name")
@client_command
def retry_all(session: Session, /, *, name: str) -> None:
    """Move every failed job of queue NAME back to waiting."""
    with session.client() as rotor:
        response = rotor.jobs.retry_all(name)
    retried = response.get("retried", 0) if isinstance(response, dict) else 0
    session.output.emit(response, lambda out, _: out.line(f"Retried {retried} failed job(s) in queue {name}."))


def render_queue_table(output: Output, response: dict[str, Any]) -> None:
    """The `queues list` table: NAME, CONCURRENCY, STATE, JOBS (waiting/active/failed)."""
    items = response.get("data") or []
    if not items:
        output.line("No queues yet. Create one with: rotor queues create NAME")
        return
    output.table(
        ["NAME", "CONCURRENCY", "STATE", "JOBS (waiting/active/failed)"],
        ([q.get("name"), q.get("concurrency"), q.get("state"), _job_summary(q.get("counts") or {})] for q in items),
    )


def render_queue(output: Output, queue: dict[str, Any]) -> None:
    """Every setting of a queue, then its job counts."""
    options = queue.get("defaultJobOptions") or {}
    output.fields(
        [
            ("Name", queue.get("name")),
            ("State", queue.get("state")),
            ("Concurrency", queue.get("concurrency")),
            ("Retry attempts", queue.get("retry_attempts")),
            ("Backoff", _backoff(options.get("backoff"))),
            ("Callback URL", queue.get("callback_url")),
            ("Callback headers", _headers(queue.get("callback_headers"))),
            ("Approval required", queue.get("approval_required")),
            ("Timeout (s)", queue.get("timeout_seconds")),
            ("Fair by", (queue.get("fairness") or {}).get("key")),
            ("Rate limit", _rate(queue.get("rateLimit"))),
            ("Created", queue.get("created_at")),
            ("Updated", queue.get("updated_at")),
        ]
    )
    if isinstance(queue.get("counts"), dict):
        output.line()
        render_counts(output, queue["counts"])


def _rate(limit: dict[str, Any] | None) -> str | None:
    return None if not limit else f"{limit.get('max')} per {limit.get('per')} by {limit.get('key')}"


def render_counts(output: Output, counts: dict[str, Any]) -> None:
    """Job counts per state, in lifecycle order, then any the server adds."""
    states = [state for state in COUNT_STATES if state in counts] + [s for s in counts if s not in COUNT_STATES]
    output.table(["STATE", "JOBS"], ([state, counts[state]] for state in states))


def print_callback_secret(output: Output, queue: dict[str, Any]) -> None:
    """Show a freshly minted callback secret, which the API returns only this once."""
    secret = queue.get("callback_secret")
    if secret:
        output.line()
        output.line(f"New callback secret: {secret}", style="bold yellow")
        output.line("Copy this — it's shown once.", style="yellow")


def _render_saved(verb: str) -> Callable[[Output, dict[str, Any]], None]:
    def render(output: Output, queue: dict[str, Any]) -> None:
        output.line(f"{verb} queue {queue.get('name')}.")
        output.line()
        render_queue(output, queue)
        print_callback_secret(output, queue)

    return render


def _render_state_change(name: str) -> Callable[[Output, dict[str, Any]], None]:
    def render(output: Output, queue: dict[str, Any]) -> None:
        output.line(f"Queue {name} is {queue.get('state', 'updated')}.")

    return render


def _job_summary(counts: dict[str, Any]) -> str:
    return " / ".join(str(counts.get(state, 0)) for state in ("waiting", "active", "failed"))


def _backoff(backoff: Any) -> str | None:
    if not isinstance(backoff, dict):
        return None
    return f"{backoff.get('type', '?')}, {backoff.get('delay', '?')} ms"


def _headers(headers: Any) -> str | None:
    if not headers:
        return None
    return ", ".join(f"{name}: {value}" for name, value in headers.items())
