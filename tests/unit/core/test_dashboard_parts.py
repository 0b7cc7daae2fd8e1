"""The dashboard's pure parts: the step graph's layout, the per-minute delivery tallies behind its charts,
the charts, and where signing in may send the browser."""

from __future__ import annotations

from typing import Any

from rotor_lite.api.dashboard.graph import NODE_H, run_graph, step_detail, step_groups
from rotor_lite.api.dashboard.render import failure_chart, throughput_chart, total_series
from rotor_lite.api.dashboard.signin import safe_next
from rotor_lite.models import (
    Attempt, BackoffType, Claimed, Queue, QueueState, Run, RunStatus, Step, StepStatus, StepType,
)
from rotor_lite.services.throughput import MINUTE_MS, Throughput, last_hour


def step(key: str, started: int | None, step_type: StepType = StepType.RUN, status: StepStatus = StepStatus.COMPLETED,
         **fields: object) -> Step:
    values: dict[str, object] = dict(
        rowid=0, run_rowid=1, key=key, name=key.split(":")[0], type=step_type, status=status, attempts=1, output=None,
        error=None, child_run_id=None, signal=None, event_name=None, started_at=started, ended_at=None, due_at=None,
    )
    return Step(**{**values, **fields})  # type: ignore[arg-type]


def a_run(status: RunStatus = RunStatus.WAITING) -> Run:
    return Run(
        rowid=1, id="run_1", workspace_id="ws", function_id="onboard", status=status, event_id="evt_1",
        event_name="contact.created", event_data=b"{}", event_ts=0, attempt=1, output=None, error=None,
        parent_run_id=None, parent_step_rowid=None, idempotency_key=None, replay_of=None, schedule_id=None,
        hook_errors=None, created_at=0, started_at=0, ended_at=None,
    )


STEPS = [
    step("fetch:1", 100),
    step("email:1", 200), step("phone:1", 200), step("score:1", 200, StepType.INVOKE, child_run_id="run_child"),
    step("hook:on_cancel", 250, StepType.HOOK),
    step("gate:1", 300, StepType.WAIT_FOR_SIGNAL, StepStatus.WAITING, signal="approve-run_1", due_at=3_600_000),
]


def test_steps_a_plan_started_together_form_one_group_and_hooks_are_left_out() -> None:
    groups = [[s.key for s in group] for group in step_groups(STEPS)]
    assert groups == [["fetch:1"], ["email:1", "phone:1", "score:1"], ["gate:1"]]


def test_two_steps_run_one_after_the_other_in_one_call_stay_apart_when_their_start_differs() -> None:
    assert len(step_groups([step("a:1", 100), step("b:1", 101)])) == 2
    assert len(step_groups([step("a:1", None), step("b:1", None)])) == 2  # no start time: nothing to group by


def test_the_graph_puts_a_group_side_by_side_between_the_trigger_and_the_end() -> None:
    graph = run_graph(a_run(), STEPS)
    by_label = {node.label: node for node in graph.nodes}
    row = [by_label[name] for name in ("email", "phone", "score")]
    assert len({node.y for node in row}) == 1 and len({node.x for node in row}) == 3
    assert by_label["contact.created"].y < by_label["fetch"].y < row[0].y < by_label["gate"].y < by_label["waiting"].y
    assert by_label["score"].href == "/dashboard/runs/run_child"  # an invoke links its child run
    assert by_label["gate"].href == "#step-gate:1" and "signal approve-run_1" in by_label["gate"].title
    # rows 1→1→3→1→1: each joint draws an edge per node above and below it
    assert len(graph.edges) == (1 + 1) + (1 + 3) + (3 + 1) + (1 + 1)
    assert graph.height == 2 * 8 + 5 * NODE_H + 4 * 34


def test_a_waiting_or_sleeping_step_says_what_it_waits_for_and_until_when() -> None:
    sleeping = step("nap:1", 1, StepType.SLEEP, StepStatus.SLEEPING, due_at=86_400_000)
    assert step_detail(sleeping) == "wakes 1970-01-02 00:00:00 UTC"
    waiting = step("reply:1", 1, StepType.WAIT_FOR_EVENT, StepStatus.WAITING, event_name="email.opened", due_at=0)
    assert step_detail(waiting) == "event email.opened until 1970-01-01 00:00:00 UTC"
    assert step_detail(step("score:1", 1, StepType.INVOKE, child_run_id="run_9")) == "→ run_9"


def test_charts_have_a_bar_per_busy_minute_and_say_it_in_words() -> None:
    series = [(0, 0, 0, 0)] * 58 + [(10, 2, 8, 1), (4, 4, 0, 3)]
    throughput, failures = throughput_chart(series), failure_chart(series)
    assert [b.title for b in throughput.bars] == ["1 min ago: 9 jobs", "0 min ago: 3 jobs"]
    assert throughput.summary == "12 jobs finished in the last hour, at most 9 a minute"
    assert failures.summary == "42.9 % of 14 attempts failed in the last hour"
    assert failures.bars[-1].height == 32  # every attempt of the last minute failed: the full height
    assert total_series([series, series])[-1] == (8, 8, 0, 6)


def test_signing_in_only_ever_returns_to_a_dashboard_page() -> None:
    assert safe_next("/dashboard/queues/q?state=failed") == "/dashboard/queues/q?state=failed"
    for elsewhere in ("https://evil.example/", "//evil.example/dashboard", "/dashboard\\@evil", "/v1/queues", None, ""):
        assert safe_next(elsewhere) == "/dashboard"


def a_queue(rowid: int) -> Queue:
    return Queue(
        rowid=rowid, workspace_id="ws", name=f"q{rowid}", concurrency=1, max_attempts=3, backoff_type=BackoffType.FIXED,
        backoff_delay_ms=0, callback_url=None, callback_headers={}, callback_secret=None, approval_required=False,
        timeout_ms=1000, state=QueueState.ACTIVE, created_at=0, updated_at=0,
    )


def attempt(ended_ms: int, outcome: str) -> Attempt:
    status = 200 if outcome == "2xx" else 500
    return Attempt(attempt=1, at=ended_ms - 5, duration_ms=5, status=status, outcome=outcome, error=None)


class Frozen:
    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


async def test_delivery_tallies_land_in_the_minute_each_attempt_ended(make_database: Any) -> None:
    now = 1_000 * MINUTE_MS + 30_000
    job = Claimed(rowid=1, id="job_1", queue_id=1, payload=b"{}", attempt=1, max_attempts=3, lease_token="t",
                  concurrency_key=None)
    async with make_database() as db:
        tallies = Throughput(db, Frozen(now))  # type: ignore[arg-type]
        for ended, outcome, terminal in [(now, "2xx", True), (now, "5xx", False), (now, "5xx", True),
                                         (now - MINUTE_MS, "2xx", True), (now - 61 * MINUTE_MS, "2xx", True)]:
            tallies.observe(None, a_queue(1), job, attempt(ended, outcome), terminal)  # type: ignore[arg-type]
        await tallies.flush()
        tallies.observe(None, a_queue(1), job, attempt(now, "timeout"), False)  # type: ignore[arg-type]
        await tallies.flush()  # added to the minute already written
        series = (await last_hour(db, now, [1, 2]))
    assert series[1][-1] == (4, 3, 1, 1)  # attempts, errors, completed, failed for good
    assert series[1][-2] == (1, 0, 1, 0)
    assert sum(t[0] for t in series[1]) == 5  # the attempt 61 minutes ago is not in the last hour
    assert series[2] == [(0, 0, 0, 0)] * 60
