"""`create_function`: a workflow function with its trigger, retries, concurrency and lifecycle hooks."""

from __future__ import annotations

import inspect
import zoneinfo
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rotor_lite.sdk.errors import WorkflowError
from rotor_lite.sdk.workflows._protocol import Event

if TYPE_CHECKING:
    from rotor_lite.sdk.workflows._step import Step

__all__ = ["HOOK_NAMES", "Context", "WorkflowFunction", "create_function"]

HOOK_NAMES = ("on_success", "on_failure", "on_cancel")


@dataclass(frozen=True, slots=True)
class Context:
    """What a workflow function (and its hooks) know about the run: `event`, `run_id`, `attempt`, `function_id`."""

    event: Event
    run_id: str
    attempt: int
    function_id: str


Handler = Callable[[Context, "Step"], Coroutine[Any, Any, Any]]
OnSuccess = Callable[[Context, Any], Awaitable[Any]]
OnFailure = Callable[[Context, WorkflowError], Awaitable[Any]]
OnCancel = Callable[[Context], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class WorkflowFunction:
    """A workflow function made by `create_function`; give it to `serve_workflow`."""

    id: str
    handler: Handler
    trigger: Mapping[str, str]
    retries: int
    concurrency: int | None
    on_success: OnSuccess | None = None
    on_failure: OnFailure | None = None
    on_cancel: OnCancel | None = None

    @property
    def hooks(self) -> list[str]:
        """The names of the lifecycle hooks this function declares."""
        return [name for name in HOOK_NAMES if getattr(self, name) is not None]

    def registration(self, serve_url: str) -> dict[str, Any]:
        """The body of `POST /v1/functions` that registers this function at `serve_url`."""
        body: dict[str, Any] = {
            "id": self.id,
            "serve_url": serve_url,
            "trigger_type": "cron" if "cron" in self.trigger else "event",
            "trigger_event": self.trigger.get("event"),
            "cron": self.trigger.get("cron"),
            "timezone": self.trigger.get("timezone"),
            "retries": self.retries,
            "concurrency": self.concurrency,
            "hooks": self.hooks,
        }
        return {key: value for key, value in body.items() if value is not None}


def create_function(
    *,
    id: str,
    trigger: Mapping[str, str],
    retries: int = 3,
    concurrency: int | None = None,
    on_success: OnSuccess | None = None,
    on_failure: OnFailure | None = None,
    on_cancel: OnCancel | None = None,
) -> Callable[[Handler], WorkflowFunction]:
    """Decorate `async def fn(ctx, step)` into a workflow function.

    `trigger` is `{"event": "user.created"}` or `{"cron": "0 2 * * *", "timezone": "UTC"}`.
    `retries` is how often a failed call or step is retried. Hooks are async functions:
    `on_success(ctx, result)`, `on_failure(ctx, error)` (after the retries are used up) and
    `on_cancel(ctx)` (a run that had started was cancelled).
    """
    _check_id(id)
    checked_trigger = _checked_trigger(trigger)
    _check_count("retries", retries, minimum=0)
    if concurrency is not None:
        _check_count("concurrency", concurrency, minimum=1)
    for name, hook in (("on_success", on_success), ("on_failure", on_failure), ("on_cancel", on_cancel)):
        if hook is not None:
            _check_async(name, hook)

    def decorate(handler: Handler) -> WorkflowFunction:
        _check_async(f"workflow function {id!r}", handler)
        return WorkflowFunction(
            id=id, handler=handler, trigger=checked_trigger, retries=retries, concurrency=concurrency,
            on_success=on_success, on_failure=on_failure, on_cancel=on_cancel,
        )

    return decorate


def _check_id(value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a workflow function needs an id: a non-empty string")


def _checked_trigger(trigger: Mapping[str, str]) -> dict[str, str]:
    keys = set(trigger) if isinstance(trigger, Mapping) else set()
    if keys == {"event"} and _is_text(trigger["event"]):
        return {"event": trigger["event"]}
    if keys == {"cron", "timezone"} and _is_text(trigger["cron"]) and _is_text(trigger["timezone"]):
        _check_timezone(trigger["timezone"])
        return {"cron": trigger["cron"], "timezone": trigger["timezone"]}
    raise ValueError('trigger must be {"event": "<name>"} or {"cron": "<expression>", "timezone": "<IANA zone>"}')


def _check_timezone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r}: use an IANA name such as 'UTC' or 'Europe/Paris'") from None


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}")


def _check_async(what: str, fn: object) -> None:
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"{what} must be an async function (async def)")


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())
