"""A workflow run's steps laid out as a graph: the trigger on top, then each group of steps the function
started together side by side, then how the run ended.

Steps of one plan (`asyncio.gather` in the SDK) are stored together with the plan's start time, so a
group is a run of consecutive steps sharing `started_at`; every step of a group leads to every step of
the next, drawn through one junction point between the rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from rotor_lite.api.dashboard.render import short_time
from rotor_lite.models import Run, Step, StepStatus, StepType

NODE_W, NODE_H = 236, 58
GAP_X, GAP_Y = 16, 34
MARGIN = 8
LABEL_CHARS = 26  # the name; the detail line (smaller) gets a few more
DETAIL_CHARS = 30


class Node(msgspec.Struct, frozen=True, kw_only=True):
    x: float
    y: float
    title: str  # everything, uncut: the tooltip and what a screen reader says
    label: str
    kind: str  # the second line: type and status
    detail: str  # the third line: wake time, signal, event or child run
    status: str  # for the colour (always also written out in `kind`)
    href: str


class Edge(msgspec.Struct, frozen=True):
    x1: float
    y1: float
    x2: float
    y2: float


class Graph(msgspec.Struct, frozen=True, kw_only=True):
    nodes: list[Node]
    edges: list[Edge]
    width: float
    height: float
    node_w: int = NODE_W
    node_h: int = NODE_H


def step_groups(steps: Sequence[Step]) -> list[list[Step]]:
    """The steps (hooks left out) in groups started together, in the order they started."""
    groups: list[list[Step]] = []
    for step in steps:
        if step.type == StepType.HOOK:
            continue
        if groups and step.started_at is not None and groups[-1][-1].started_at == step.started_at:
            groups[-1].append(step)
        else:
            groups.append([step])
    return groups


def run_graph(run: Run, steps: Sequence[Step]) -> Graph:
    """Positions of the trigger, every step and the end, and the edges between consecutive rows."""
    rows = [[_trigger(run)], *([_step_node(step) for step in group] for group in step_groups(steps)), [_end(run)]]
    widest = max(len(row) for row in rows)
    width = 2 * MARGIN + widest * NODE_W + (widest - 1) * GAP_X
    placed = [_place(row, index, width) for index, row in enumerate(rows)]
    edges = [edge for upper, lower in zip(placed, placed[1:]) for edge in _joined(upper, lower)]
    height = 2 * MARGIN + len(rows) * NODE_H + (len(rows) - 1) * GAP_Y
    return Graph(nodes=[node for row in placed for node in row], edges=edges, width=width, height=height)


def _place(row: list[Node], index: int, width: float) -> list[Node]:
    row_width = len(row) * NODE_W + (len(row) - 1) * GAP_X
    left, top = (width - row_width) / 2, MARGIN + index * (NODE_H + GAP_Y)
    return [msgspec.structs.replace(node, x=left + i * (NODE_W + GAP_X), y=top) for i, node in enumerate(row)]


def _joined(upper: list[Node], lower: list[Node]) -> list[Edge]:
    """Each node of a row to a junction midway to the next row, and the junction to each node of that row."""
    bottom = upper[0].y + NODE_H
    junction_x, junction_y = _centre(upper + lower), bottom + GAP_Y / 2
    up = [Edge(n.x + NODE_W / 2, bottom, junction_x, junction_y) for n in upper]
    return up + [Edge(junction_x, junction_y, n.x + NODE_W / 2, n.y) for n in lower]


def _centre(nodes: list[Node]) -> float:
    return (min(n.x for n in nodes) + max(n.x for n in nodes) + NODE_W) / 2


def _cut(text: str, chars: int = LABEL_CHARS) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _trigger(run: Run) -> Node:
    return Node(x=0, y=0, title=f"{run.function_id} triggered by event {run.event_name}", label=_cut(run.event_name),
                kind="trigger", detail=_cut(run.function_id, DETAIL_CHARS), status="trigger", href="#event")


def _end(run: Run) -> Node:
    return Node(x=0, y=0, title=f"the run is {run.status.value} (attempt {run.attempt})", label=run.status.value,
                kind="run", detail=f"attempt {run.attempt}", status=run.status.value, href="#outcome")


def _step_node(step: Step) -> Node:
    href = f"/dashboard/runs/{step.child_run_id}" if step.child_run_id else f"#step-{step.key}"
    kind, detail = f"{step.type.value} · {step.status.value}", step_detail(step)
    return Node(x=0, y=0, title=f"{step.name}: {kind}, {detail}", label=_cut(step.name), kind=kind,
                detail=_cut(detail, DETAIL_CHARS), status=step.status.value, href=href)


def step_detail(step: Step) -> str:
    """What an open step waits for, or where an invoke went: its wake time, signal, event or child run."""
    waiting = step.status in (StepStatus.SLEEPING, StepStatus.WAITING) and step.due_at is not None
    if step.type == StepType.SLEEP and waiting:
        return f"wakes {short_time(step.due_at)}"
    if step.signal:
        return f"signal {step.signal}" + (f" until {short_time(step.due_at)}" if waiting else "")
    if step.type == StepType.WAIT_FOR_EVENT and step.event_name:
        return f"event {step.event_name}" + (f" until {short_time(step.due_at)}" if waiting else "")
    if step.child_run_id:
        return f"→ {step.child_run_id}"
    return f"{step.attempts} attempt{'s' if step.attempts != 1 else ''}"
