"""The workflow protocol as the server speaks it: the answers a serve URL may give (docs/workflow-protocol.md).

Each answer is one tagged Struct; anything else a serve URL sends back is a failed call.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

PROTOCOL_VERSION = 1


class ErrorInfo(msgspec.Struct, kw_only=True):
    name: str = "Error"
    message: str = ""


class Complete(msgspec.Struct, tag="complete", kw_only=True):
    output: Any = None


class Failure(msgspec.Struct, tag="error", kw_only=True):
    error: ErrorInfo = msgspec.field(default_factory=ErrorInfo)
    retriable: bool = True




class PlannedStep(msgspec.Struct, kw_only=True):
    key: str
    id: str
    type: Literal["run", "sleep", "invoke", "send_event", "wait_for_signal", "wait_for_event"]
    opts: dict[str, Any] = msgspec.field(default_factory=dict)


class Plan(msgspec.Struct, tag="plan", kw_only=True):
    steps: list[PlannedStep]


class Waiting(msgspec.Struct, tag="waiting", kw_only=True):
    pass


class StepDone(msgspec.Struct, tag="step", kw_only=True):
    key: str
    id: str
    status: Literal["completed", "failed"]
    output: Any = None
    error: ErrorInfo | None = None
    retriable: bool = True
    then: Complete | Failure | Plan | Waiting | None = None  # what the body did next, for a completed step


class HookDone(msgspec.Struct, tag="hook", kw_only=True):
    ok: bool = True
    error: ErrorInfo | None = None
    durationMs: int | None = None


Answer = Complete | Failure | StepDone | Plan | Waiting | HookDone
_DECODER = msgspec.json.Decoder(Answer)


def decode_answer(body: bytes) -> Answer:
    """The serve URL's answer; raises msgspec.DecodeError/ValidationError for anything else."""
    return _DECODER.decode(body)


class SleepOpts(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    until: int | None = None
    ms: int | None = None


class InvokeOpts(msgspec.Struct, kw_only=True, rename="camel"):
    function: str
    data: Any = None
    timeout_ms: int


class SendEventOpts(msgspec.Struct, kw_only=True):
    name: str
    data: Any = None
    ts: int | None = None


class SignalOpts(msgspec.Struct, kw_only=True, rename="camel"):
    signal: str
    timeout_ms: int


class EventWaitOpts(msgspec.Struct, kw_only=True, rename="camel"):
    event: str
    timeout_ms: int
    match: str | None = None


OPTS_TYPES: dict[str, type[msgspec.Struct]] = {
    "sleep": SleepOpts, "invoke": InvokeOpts, "send_event": SendEventOpts,
    "wait_for_signal": SignalOpts, "wait_for_event": EventWaitOpts,
}


def error_json(name: str, message: str) -> str:
    """A step's or run's error as stored: `{"name", "message"}`."""
    return msgspec.json.encode({"name": name, "message": message}).decode()


class CallResult(msgspec.Struct, kw_only=True, frozen=True):
    """How one call to a serve URL ended: an answer, or why there was none (status, timeout, bad body)."""

    answer: Answer | None
    failure: str | None = None
    duration_ms: int = 0
