"""Drawing pages: the Jinja environment (autoescaped: every value a template prints is text, never markup),
its filters, the context every page shares, and the small charts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import Request
from litestar.handlers import HTTPRouteHandler
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template import TemplateConfig

from rotor_lite.api.dashboard.access import allowed, session_of
from rotor_lite.clock import iso
from rotor_lite.models import KeyType, Principal
from rotor_lite.services.throughput import HOUR_MINUTES
from rotor_lite.store.throughput import Tally

HERE = Path(__file__).parent
PREVIEW_CHARS = 600  # a payload in a list shows this much
PAGE_SIZE = 50  # rows on a page of every list (keyset pages: `?cursor=`)


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Litestar's Jinja support, on an environment that escapes everything and refuses unknown names."""
    environment = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    environment.filters.update(pretty=pretty_json, preview=preview_json, when=short_time, zoned=zoned_time, iso=iso)
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment))


class NavItem(msgspec.Struct, frozen=True):
    label: str
    handler: HTTPRouteHandler


NAV: list[NavItem] = []  # the header's links, in order (filled where the pages are gathered: __init__.py)


def page(request: Request[Any, Any, Any], principal: Principal, template: str, **context: Any) -> Template:
    """A full page: `context` and what every page shows (the nav the key may open, the workspace, notices)."""
    session = session_of(request)
    return Template(template_name=template, context={
        "principal": principal, "csrf": session.csrf, "flashes": session.take_flashes(),
        "nav": [(item.label, _path_of(item.handler)) for item in NAV if allowed(principal, item.handler)],
        "here": request.url.path, "workspace_name": session.workspace_name,
        "team_key": principal.key_type is KeyType.TEAM, **context,
    })


def _path_of(handler: HTTPRouteHandler) -> str:
    path = next(iter(handler.paths))
    return "/dashboard" + ("" if path == "/" else path)


# Filters ---------------------------------------------------------------------------------------


def pretty_json(value: Any) -> str:
    """JSON (bytes, text, msgspec.Raw or a value) indented for reading."""
    decoded = _decoded(value)
    return _plain_text(value) if decoded is _TEXT else json.dumps(decoded, indent=2, ensure_ascii=False)


def preview_json(value: Any) -> str:
    """JSON on one line, cut at PREVIEW_CHARS."""
    decoded = _decoded(value)
    text = _plain_text(value) if decoded is _TEXT else json.dumps(decoded, ensure_ascii=False)
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"


_TEXT = object()  # a value that is not JSON: shown as it is


def _decoded(value: Any) -> Any:
    if isinstance(value, str):  # a preview already cut as text
        return _TEXT
    if isinstance(value, msgspec.Raw):
        value = bytes(value)
    if isinstance(value, (bytes, bytearray)):
        try:
            return msgspec.json.decode(value)
        except msgspec.DecodeError:
            return _TEXT
    return value


def _plain_text(value: Any) -> str:
    if isinstance(value, msgspec.Raw):
        value = bytes(value)
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)


def short_time(value: str | int | None) -> str:
    """An ISO timestamp or epoch milliseconds as `2026-12-05 14:03:22 UTC`; empty for none."""
    if value is None or value == "":
        return ""
    if isinstance(value, int):
        moment = datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    else:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def zoned_time(value: int | None, zone: str) -> str:
    """Epoch milliseconds in an IANA zone: `2026-12-05 09:00 EST`."""
    if value is None:
        return ""
    return datetime.fromtimestamp(value / 1000, tz=ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


# Charts ----------------------------------------------------------------------------------------


class Bar(msgspec.Struct, frozen=True):
    x: float
    y: float
    height: float
    title: str


class Chart(msgspec.Struct, frozen=True):
    """A bar per minute of the last hour, in a `width` × `height` box; `summary` is its text alternative."""

    bars: list[Bar]
    bar_width: float
    width: int
    height: int
    summary: str


def throughput_chart(series: Sequence[Tally], width: int = 180, height: int = 32) -> Chart:
    """Jobs finished (completed or failed for good) per minute."""
    values = [float(t[2] + t[3]) for t in series]
    total = int(sum(values))
    return _bars(values, width, height, lambda v: f"{int(v)} jobs",
                 f"{total} jobs finished in the last hour, at most {int(max(values, default=0))} a minute")


def failure_chart(series: Sequence[Tally], width: int = 180, height: int = 32) -> Chart:
    """The share of delivery attempts that failed, per minute (0 to 100 %)."""
    values = [100.0 * t[1] / t[0] if t[0] else 0.0 for t in series]
    attempts, errors = sum(t[0] for t in series), sum(t[1] for t in series)
    summary = f"{100.0 * errors / attempts:.1f} % of {attempts} attempts failed in the last hour" if attempts else (
        "no delivery attempt in the last hour")
    return _bars(values, width, height, lambda v: f"{v:.0f} % failed", summary, ceiling=100.0)


def total_series(many: Sequence[Sequence[Tally]]) -> list[Tally]:
    """The minute-by-minute sum of several queues' series."""
    totals = [(0, 0, 0, 0)] * HOUR_MINUTES
    for series in many:
        totals = [(a + e, b + f, c + g, d + h) for (a, b, c, d), (e, f, g, h) in zip(totals, series)]
    return totals


def _bars(values: list[float], width: int, height: int, label: Any, summary: str, ceiling: float = 0.0) -> Chart:
    top = max(ceiling, max(values, default=0.0)) or 1.0
    step = width / max(1, len(values))
    minutes = len(values)
    bars = [
        Bar(x=round(i * step, 2), y=round(height - height * v / top, 2), height=round(height * v / top, 2),
            title=f"{minutes - i - 1} min ago: {label(v)}")
        for i, v in enumerate(values) if v
    ]
    return Chart(bars=bars, bar_width=round(max(step - 0.5, 0.5), 2), width=width, height=height, summary=summary)
