"""The messages of the workflow protocol (docs/workflow-protocol.md): the call rotor-lite makes and
every answer the app can give."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "MAX_OUTPUT_BYTES",
    "PROTOCOL_VERSION",
    "Answer",
    "Call",
    "Complete",
    "ErrorInfo",
    "Event",
    "Failed",
    "HookDone",
    "OutputError",
    "Plan",
    "PlannedStep",
    "SavedStep",
    "StepCompleted",
    "StepFailed",
    "Waiting",
    "encode_output",
]

PROTOCOL_VERSION = 1
MAX_OUTPUT_BYTES = 4 * 1024 * 1024


class ErrorInfo(msgspec.Struct, frozen=True):
    """An error as the protocol carries it: the exception's class name and its message."""

    name: str
    message: str = ""


class Event(msgspec.Struct, frozen=True):
    """The event that started the run: `.name`, `.data`, `.id`, `.ts` (epoch milliseconds)."""

    id: str
    name: str
    data: Any = None
    ts: int = 0


class SavedStep(msgspec.Struct, frozen=True):
    """A step's outcome as rotor-lite saved it."""

    status: Literal["completed", "failed", "pending"]
    output: Any = None
    error: ErrorInfo | None = None


class Call(msgspec.Struct, frozen=True, rename="camel"):
    """The body of a call from rotor-lite: make progress on a run (`kind="run"`) or run a hook."""

    kind: Literal["run", "hook"]
    function_id: str
    run_id: str
    event: Event
    v: int = PROTOCOL_VERSION
    attempt: int = 1
    steps: dict[str, SavedStep] = {}
    target: str | None = None
    hook: str | None = None
    output: Any = None
    error: ErrorInfo | None = None


class Complete(msgspec.Struct, tag_field="type", tag="complete"):
    output: msgspec.Raw


class Failed(msgspec.Struct, tag_field="type", tag="error"):
    error: ErrorInfo
    retriable: bool


class StepCompleted(msgspec.Struct, tag_field="type", tag="step", omit_defaults=True):
    key: str
    id: str
    output: msgspec.Raw
    status: Literal["completed"]
    # What the function did next with the output, when that runs nothing: its end, or a plan of steps
    # rotor-lite carries out (a sleep, a wait…). It spares rotor-lite the call that would ask.
    then: Complete | Failed | Plan | Waiting | None = None


class StepFailed(msgspec.Struct, tag_field="type", tag="step"):
    key: str
    id: str
    error: ErrorInfo
    retriable: bool
    status: Literal["failed"] = "failed"


class PlannedStep(msgspec.Struct):
    key: str
    id: str
    type: str
    opts: dict[str, Any]


class Plan(msgspec.Struct, tag_field="type", tag="plan"):
    steps: list[PlannedStep]


class Waiting(msgspec.Struct, tag_field="type", tag="waiting"):
    pass


class HookDone(msgspec.Struct, tag_field="type", tag="hook", rename="camel", omit_defaults=True):
    ok: bool
    duration_ms: int
    error: ErrorInfo | None = None


Answer = Complete | Failed | StepCompleted | StepFailed | Plan | Waiting | HookDone


class OutputError(Exception):
    """A value that cannot be an output: not JSON-serializable, or larger than 4 MiB."""


def encode_output(value: Any, *, what: str) -> msgspec.Raw:
    """`value` as JSON bytes, ready to embed in an answer; raises OutputError when it cannot be an output."""
    try:
        encoded = msgspec.json.encode(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise OutputError(f"{what} is not JSON-serializable: {exc}") from None
    if len(encoded) > MAX_OUTPUT_BYTES:
        raise OutputError(f"{what} is {len(encoded):,} bytes of JSON, over the 4 MiB limit")
    return msgspec.Raw(encoded)
