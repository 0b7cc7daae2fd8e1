"""Running a workflow function from the top: step keys, saved outcomes, discovery, plans and targets."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rotor_lite.sdk import NonRetriableError, create_function, serve_workflow
from rotor_lite.sdk.errors import SignalTimeoutError, WorkflowFailedError, WorkflowTimeoutError
from rotor_lite.sdk.workflows import Context, Step, WorkflowApp
from rotor_lite.sdk.workflows._memo import Memo
from tests.unit.sdk.workflow_kit import (
    PENDING,
    RUN_ID,
    SIGNING_KEY,
    answer,
    completed,
    failed,
    run_call,
    saved_from,
)

TRIGGER = {"event": "user.created"}


def serve(handler: Any, id: str = "wf") -> WorkflowApp:
    return serve_workflow(functions=[create_function(id=id, trigger=TRIGGER)(handler)], signing_key=SIGNING_KEY)


async def test_a_loop_reusing_an_id_gives_each_use_its_own_key() -> None:
    charged: list[int] = []

    def charge(n: int) -> int:
        charged.append(n)
        return 100 + n

    async def handler(ctx: Context, step: Step) -> Any:
        return [await step.run("charge", charge, n) for n in range(3)]

    app = serve(handler)
    saved = {"charge:1": completed(100), "charge:2": completed(101)}
    third = await answer(app, run_call("wf", saved))
    then = {"type": "complete", "output": [100, 101, 102]}  # what the function does next runs nothing: said at once
    assert third == {"type": "step", "key": "charge:3", "id": "charge", "status": "completed", "output": 102, "then": then}
    assert charged == [2]
    done = await answer(app, run_call("wf", {**saved, "charge:3": saved_from(third)}))
    assert done == {"type": "complete", "output": [100, 101, 102]}
    assert charged == [2]


async def test_sequential_steps_are_discovered_and_run_one_per_call() -> None:
    effects: Counter[str] = Counter()

    async def effect(name: str) -> str:
        effects[name] += 1
        return name.upper()

    async def handler(ctx: Context, step: Step) -> Any:
        a = await step.run("a", effect, "a")
        b = await step.run("b", effect, a + "b")
        return await step.run("c", effect, b + "c")

    app = serve(handler)
    saved: dict[str, Any] = {}
    keys = []
    while (reply := await answer(app, run_call("wf", saved)))["type"] == "step":
        keys.append(reply["key"])
        saved[reply["key"]] = saved_from(reply)
    assert keys == ["a:1", "b:1", "c:1"]
    assert reply == {"type": "complete", "output": "ABC"}
    assert effects == {"a": 1, "Ab": 1, "ABc": 1}


def fan_out(effects: Counter[str]) -> Any:
    async def effect(name: str) -> str:
        effects[name] += 1
        return name

    async def handler(ctx: Context, step: Step) -> Any:
        return await asyncio.gather(*(step.run(name, effect, name) for name in ("a", "b", "c")))

    return handler


async def test_run_steps_started_together_are_planned_together() -> None:
    effects: Counter[str] = Counter()
    reply = await answer(serve(fan_out(effects)), run_call("wf"))
    assert reply == {
        "type": "plan",
        "steps": [{"key": f"{name}:1", "id": name, "type": "run", "opts": {}} for name in ("a", "b", "c")],
    }
    assert not effects


async def test_a_target_call_runs_only_the_target() -> None:
    effects: Counter[str] = Counter()
    app = serve(fan_out(effects))
    all_pending = {"a:1": PENDING, "b:1": PENDING, "c:1": PENDING}
    reply = await answer(app, run_call("wf", all_pending, target="b:1"))
    assert reply == {"type": "step", "key": "b:1", "id": "b", "status": "completed", "output": "b"}
    assert effects == {"b": 1}
    finished = {key: completed(key[0]) for key in all_pending}
    assert await answer(app, run_call("wf", finished)) == {"type": "complete", "output": ["a", "b", "c"]}


async def test_a_target_the_function_does_not_reach_is_a_final_error() -> None:
    async def handler(ctx: Context, step: Step) -> Any:
        return await step.run("a", lambda: 1)

    reply = await answer(serve(handler), run_call("wf", {"a:1": completed(1)}, target="zzz:1"))
    assert reply["type"] == "error" and reply["retriable"] is False
    assert reply["error"]["name"] == "TargetNotReachedError" and "zzz:1" in reply["error"]["message"]


async def test_pending_steps_are_awaited_and_never_planned_again() -> None:
    async def handler(ctx: Context, step: Step) -> Any:
        await step.sleep("nap", "1h")
        return await asyncio.gather(
            step.wait_for_signal("gate", signal="sig-1", timeout="1h"),
            step.run("x", lambda: "x"),
            step.run("y", lambda: "y"),
        )

    app = serve(handler)
    assert await answer(app, run_call("wf", {"nap:1": PENDING})) == {"type": "waiting"}
    reply = await answer(app, run_call("wf", {"nap:1": completed(None), "gate:1": PENDING}))
    assert [step["key"] for step in reply["steps"]] == ["x:1", "y:1"]
    lone = await answer(app, run_call("wf", {"nap:1": completed(None), "gate:1": PENDING, "y:1": PENDING}))
    then = {"type": "waiting"}  # with x's output the function still waits on gate and y
    assert lone == {"type": "step", "key": "x:1", "id": "x", "status": "completed", "output": "x", "then": then}


ISO = "2026-01-01T00:00:00Z"
EPOCH_MS = 1767225600000


@pytest.mark.parametrize(
    ("call", "type", "opts"),
    [
        (lambda s: s.sleep("p", "30s"), "sleep", {"ms": 30_000}),
        (lambda s: s.sleep("p", 1.5), "sleep", {"ms": 1500}),
        (lambda s: s.sleep("p", timedelta(days=7)), "sleep", {"ms": 7 * 86_400_000}),
        (lambda s: s.sleep_until("p", ISO), "sleep", {"until": EPOCH_MS}),
        (lambda s: s.sleep_until("p", datetime(2026, 1, 1, tzinfo=UTC)), "sleep", {"until": EPOCH_MS}),
        (lambda s: s.sleep_until("p", datetime(2026, 1, 1)), "sleep", {"until": EPOCH_MS}),
        (lambda s: s.sleep_until("p", EPOCH_MS), "sleep", {"until": EPOCH_MS}),
        (
            lambda s: s.invoke("p", workflow="contact-enricher", data={"id": 1}, timeout="5m"),
            "invoke", {"function": "contact-enricher", "data": {"id": 1}, "timeoutMs": 300_000},
        ),
        (
            lambda s: s.send_event("p", name="analytics/contact.scored", data={"score": 1}),
            "send_event", {"name": "analytics/contact.scored", "data": {"score": 1}, "ts": None},
        ),
        (
            lambda s: s.send_event("p", name="later", ts=EPOCH_MS),
            "send_event", {"name": "later", "data": None, "ts": EPOCH_MS},
        ),
        (
            lambda s: s.wait_for_signal("p", signal="approval-run_1", timeout="48h"),
            "wait_for_signal", {"signal": "approval-run_1", "timeoutMs": 48 * 3_600_000},
        ),
        (
            lambda s: s.wait_for_event("p", event="email.opened", match='data.contactId == "c_1"', timeout="7d"),
            "wait_for_event", {"event": "email.opened", "match": 'data.contactId == "c_1"', "timeoutMs": 604_800_000},
        ),
        (
            lambda s: s.wait_for_event("p", event="email.opened", timeout=60),
            "wait_for_event", {"event": "email.opened", "match": None, "timeoutMs": 60_000},
        ),
    ],
)
async def test_each_primitive_is_planned_with_its_options(call: Any, type: str, opts: dict[str, Any]) -> None:
    async def handler(ctx: Context, step: Step) -> Any:
        return await call(step)

    reply = await answer(serve(handler), run_call("wf"))
    assert reply == {"type": "plan", "steps": [{"key": "p:1", "id": "p", "type": type, "opts": opts}]}


async def test_invoke_accepts_the_function_object_and_returns_the_saved_result() -> None:
    @create_function(id="child", trigger={"event": "child.requested"})
    async def child(ctx: Context, step: Step) -> Any:
        return None

    async def handler(ctx: Context, step: Step) -> Any:
        return await step.invoke("call", workflow=child, data=None, timeout=60)

    app = serve(handler)
    plan = await answer(app, run_call("wf"))
    assert plan["steps"][0]["opts"] == {"function": "child", "data": None, "timeoutMs": 60_000}
    saved = {"call:1": completed({"result": {"score": 3}, "runId": "run_child"})}
    assert await answer(app, run_call("wf", saved)) == {
        "type": "complete", "output": {"result": {"score": 3}, "runId": "run_child"},
    }


async def test_saved_outcomes_of_waits_are_returned() -> None:
    async def handler(ctx: Context, step: Step) -> Any:
        approval = await step.wait_for_signal("gate", signal="s", timeout="1h")
        opened = await step.wait_for_event("open", event="email.opened", timeout="7d")
        sent = await step.send_event("tell", name="done")
        return {"approval": approval, "opened": opened, "openedIsNone": opened is None, "sent": sent}

    saved = {"gate:1": completed({"approved": True}), "open:1": completed(None), "tell:1": completed({"id": "evt_9"})}
    reply = await answer(serve(handler), run_call("wf", saved))
    assert reply["output"] == {
        "approval": {"approved": True}, "opened": None, "openedIsNone": True, "sent": {"id": "evt_9"},
    }


@pytest.mark.parametrize(
    ("name", "raised_as"),
    [
        ("WorkflowFailedError", "WorkflowFailedError"),
        ("WorkflowTimeoutError", "WorkflowTimeoutError"),
        ("WorkflowCancelledError", "WorkflowCancelledError"),
        ("SignalTimeoutError", "SignalTimeoutError"),
        ("ValueError", "StepError"),
        ("NonRetriableError", "StepError"),
    ],
)
async def test_a_saved_error_is_raised_under_its_name(name: str, raised_as: str) -> None:
    async def handler(ctx: Context, step: Step) -> Any:
        try:
            await step.run("s", lambda: None)
        except Exception as exc:
            return {"class": type(exc).__name__, "name": exc.name, "message": exc.message}  # type: ignore[attr-defined]
        return "not raised"

    reply = await answer(serve(handler), run_call("wf", {"s:1": failed(name, "child run_2 failed")}))
    assert reply["output"] == {"class": raised_as, "name": name, "message": "child run_2 failed"}


async def test_an_uncaught_saved_error_fails_the_run_without_retries() -> None:
    async def handler(ctx: Context, step: Step) -> Any:
        return await step.wait_for_signal("gate", signal="s", timeout="1h")

    reply = await answer(serve(handler), run_call("wf", {"gate:1": failed("SignalTimeoutError", "no signal in 1h")}))
    assert reply == {
        "type": "error", "error": {"name": "SignalTimeoutError", "message": "no signal in 1h"}, "retriable": False,
    }


async def test_errors_raised_by_the_function_are_retriable_unless_non_retriable() -> None:
    async def flaky(ctx: Context, step: Step) -> Any:
        raise ConnectionError("db down")

    async def hopeless(ctx: Context, step: Step) -> Any:
        raise NonRetriableError("bad input")

    assert await answer(serve(flaky), run_call("wf")) == {
        "type": "error", "error": {"name": "ConnectionError", "message": "db down"}, "retriable": True,
    }
    assert await answer(serve(hopeless), run_call("wf")) == {
        "type": "error", "error": {"name": "NonRetriableError", "message": "bad input"}, "retriable": False,
    }


@pytest.mark.parametrize(
    ("raised", "retriable"), [(ValueError("nope"), True), (NonRetriableError("nope"), False)]
)
async def test_a_failing_step_is_answered_as_a_failed_step(raised: Exception, retriable: bool) -> None:
    def boom() -> None:
        raise raised

    async def handler(ctx: Context, step: Step) -> Any:
        return await step.run("s", boom)

    reply = await answer(serve(handler), run_call("wf"))
    assert reply == {
        "type": "step", "key": "s:1", "id": "s", "status": "failed",
        "error": {"name": type(raised).__name__, "message": "nope"}, "retriable": retriable,
    }


@pytest.mark.parametrize(
    ("output", "says"),
    [(object(), "not JSON-serializable"), ("x" * (4 * 1024 * 1024), "over the 4 MiB limit")],
)
async def test_a_step_output_that_cannot_be_saved_fails_the_step_for_good(output: Any, says: str) -> None:
    async def handler(ctx: Context, step: Step) -> Any:
        return await step.run("s", lambda: output)

    reply = await answer(serve(handler), run_call("wf"))
    assert reply["type"] == "step" and reply["status"] == "failed" and reply["retriable"] is False
    assert reply["error"]["name"] == "OutputError" and says in reply["error"]["message"]


async def test_a_return_value_that_is_not_json_fails_the_run_for_good() -> None:
    async def handler(ctx: Context, step: Step) -> Any:
        return {1, 2}.__iter__()

    reply = await answer(serve(handler), run_call("wf"))
    assert reply["type"] == "error" and reply["retriable"] is False and reply["error"]["name"] == "OutputError"


async def test_step_run_takes_sync_and_async_callables_with_arguments() -> None:
    def add(a: int, b: int = 0) -> int:
        return a + b

    async def mul(a: int, *, by: int) -> int:
        return a * by

    async def handler(ctx: Context, step: Step) -> Any:
        added = await step.run("add", add, 2, b=3)
        multiplied = await step.run("mul", mul, 2, by=4)
        return [added, multiplied, await step.run("l", lambda: mul(1, by=5))]

    app = serve(handler)
    assert (await answer(app, run_call("wf")))["output"] == 5
    assert (await answer(app, run_call("wf", {"add:1": completed(5)})))["output"] == 8
    saved = {"add:1": completed(5), "mul:1": completed(8)}
    assert (await answer(app, run_call("wf", saved)))["output"] == 5


async def test_the_function_sees_the_run_context() -> None:
    async def handler(ctx: Context, step: Step) -> Any:
        event = ctx.event
        return [ctx.run_id, ctx.attempt, ctx.function_id, event.id, event.name, event.data, event.ts]

    reply = await answer(serve(handler), run_call("wf"))
    assert reply["output"] == [RUN_ID, 1, "wf", "evt_1", "user.created", {"userId": "u_1"}, 1767225600000]


def new_step() -> Step:
    return Step(Memo(saved={}))


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.invoke("i", workflow="w", data={}),
        lambda s: s.wait_for_signal("w", signal="sig"),
        lambda s: s.wait_for_event("w", event="e.v"),
    ],
)
def test_a_missing_timeout_is_a_type_error_at_the_call(call: Any) -> None:
    with pytest.raises(TypeError, match="timeout"):
        call(new_step())


async def test_a_missing_timeout_fails_the_call_before_anything_is_planned() -> None:
    async def handler(ctx: Context, step: Step) -> Any:
        return await step.wait_for_signal("gate", signal="s")  # type: ignore[call-arg]

    reply = await answer(serve(handler), run_call("wf"))
    assert reply["type"] == "error" and reply["error"]["name"] == "TypeError" and "timeout" in reply["error"]["message"]


async def test_invoke_waits_at_most_24_hours() -> None:
    step = new_step()
    with pytest.raises(ValueError, match="24h"):
        await step.invoke("i", workflow="w", timeout="25h")
    with pytest.raises(ValueError, match="24h"):
        await step.invoke("i", workflow="w", timeout=timedelta(hours=24, milliseconds=1))


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.run("", lambda: 1), ValueError),
        (lambda s: s.run(7, lambda: 1), TypeError),
        (lambda s: s.run("x", "not callable"), TypeError),
        (lambda s: s.sleep("x", "soon"), ValueError),
        (lambda s: s.sleep("x", -1), ValueError),
        (lambda s: s.sleep("x", True), TypeError),
        (lambda s: s.sleep_until("x", "tomorrow"), ValueError),
        (lambda s: s.wait_for_signal("x", signal="", timeout="1h"), ValueError),
        (lambda s: s.wait_for_event("x", event="e", timeout="0s"), ValueError),
        (lambda s: s.invoke("x", workflow="w", data=object(), timeout="1m"), TypeError),
    ],
)
async def test_bad_arguments_are_refused_before_the_step_is_reached(call: Any, error: type[Exception]) -> None:
    memo = Memo(saved={})
    with pytest.raises(error):
        await call(Step(memo))
    assert not memo.new and memo.next_key("x") == "x:1"


async def test_a_step_inside_a_step_fails_the_outer_step_for_good() -> None:
    async def handler(ctx: Context, step: Step) -> Any:
        async def outer() -> Any:
            return await step.run("inner", lambda: 1)

        return await step.run("outer", outer)

    reply = await answer(serve(handler), run_call("wf"))
    assert reply["key"] == "outer:1" and reply["status"] == "failed" and reply["retriable"] is False
    assert reply["error"]["name"] == "NonRetriableError" and "cannot be nested" in reply["error"]["message"]


async def test_a_hundred_steps_and_nested_gathers_are_planned_in_one_answer() -> None:
    async def branch(step: Step, n: int) -> Any:
        first = await step.run("prepare", lambda: n)
        return await asyncio.gather(step.run("item", lambda: first), step.sleep("pause", 1))

    async def handler(ctx: Context, step: Step) -> Any:
        return await asyncio.gather(*(branch(step, n) for n in range(50)))

    prepared = {f"prepare:{n}": completed(n) for n in range(1, 51)}
    reply = await answer(serve(handler), run_call("wf", prepared))
    keys = [planned["key"] for planned in reply["steps"]]
    assert len(keys) == 100 and set(keys) == {f"{id}:{n}" for id in ("item", "pause") for n in range(1, 51)}


OUTCOMES_BY_TYPE = {
    "sleep": completed(None),
    "invoke": completed({"result": {"score": 7, "company": "Acme"}, "runId": "run_child"}),
    "send_event": completed({"id": "evt_2"}),
    "wait_for_signal": completed({"approved": True}),
    "wait_for_event": completed({"openedAt": "2026-01-02T00:00:00Z"}),
}


async def test_the_full_primitive_workflow_runs_to_its_end() -> None:
    """The guide's example (docs/workflows.md), with rotor-lite's part played by OUTCOMES_BY_TYPE."""

    async def campaign(ctx: Context, step: Step) -> Any:
        contact_id = ctx.event.data["userId"]
        profile = await step.run("fetch-profile", lambda: {"name": "Ada"})
        await step.sleep("initial-delay", "1h")
        try:
            enriched = (await step.invoke("enrich-contact", workflow="contact-enricher",
                                          data={"contactId": contact_id}, timeout="5m"))["result"]
        except (WorkflowFailedError, WorkflowTimeoutError):
            enriched = {"score": 0, "company": "Unknown"}
        await step.send_event("notify-analytics", name="analytics/contact.scored",
                              data={"contactId": contact_id, "score": enriched["score"]})
        try:
            approval = await step.wait_for_signal("approval-gate", signal=f"campaign-approval-{ctx.run_id}",
                                                  timeout="48h")
        except SignalTimeoutError:
            return {"status": "auto-rejected", "contactId": contact_id}
        if not approval["approved"]:
            return {"status": "rejected", "contactId": contact_id}
        opened = await step.wait_for_event("wait-for-open", event="email.opened",
                                           match=f'data.contactId == "{contact_id}"', timeout="7d")
        return {"status": "complete", "contactId": contact_id, "name": profile["name"],
                "score": enriched["score"], "emailOpened": opened is not None}

    app = serve(campaign)
    saved: dict[str, Any] = {}
    seen: list[str] = []
    while (reply := await answer(app, run_call("wf", saved)))["type"] != "complete":
        if reply["type"] == "step":
            seen.append("run")
            saved[reply["key"]] = saved_from(reply)
        else:
            (planned,) = reply["steps"]
            seen.append(planned["type"])
            saved[planned["key"]] = OUTCOMES_BY_TYPE[planned["type"]]
    assert seen == ["run", "sleep", "invoke", "send_event", "wait_for_signal", "wait_for_event"]
    assert reply["output"] == {"status": "complete", "contactId": "u_1", "name": "Ada", "score": 7, "emailOpened": True}


async def test_a_step_answer_says_what_the_function_does_next_when_that_runs_nothing() -> None:
    """One call instead of two: the plan or the end that follows a step comes with its output."""
    async def handler(ctx: Context, step: Step) -> Any:
        first = await step.run("first", lambda: 1)
        await step.sleep("nap", "1h")
        second = await step.run("second", lambda: 2)
        third = await step.run("third", lambda: 3)
        if ctx.event.data.get("fail"):
            raise ValueError("after the steps")
        return first + second + third

    app = serve(handler)
    reply = await answer(app, run_call("wf", {}))
    assert reply["key"] == "first:1" and reply["then"] == {
        "type": "plan", "steps": [{"key": "nap:1", "id": "nap", "type": "sleep", "opts": {"ms": 3_600_000}}],
    }
    reply = await answer(app, run_call("wf", {"first:1": completed(1), "nap:1": completed(None)}))
    assert reply["key"] == "second:1" and "then" not in reply  # "third" has a side effect: it waits for the save
    saved = {"first:1": completed(1), "nap:1": completed(None), "second:1": completed(2)}
    reply = await answer(app, run_call("wf", saved))
    assert reply["key"] == "third:1" and reply["then"] == {"type": "complete", "output": 6}
