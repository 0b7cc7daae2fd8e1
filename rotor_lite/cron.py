"""Cron expressions: parse and validate, describe in plain English, compute fire times in an IANA zone.

APScheduler's `CronTrigger` matches the fields; two things are done differently from handing it
a crontab string:

- Day-of-week is standard cron (0 and 7 = Sunday, `1-5` = Monday to Friday); APScheduler numbers
  weekdays from Monday = 0, so the field is expanded here and passed as day names. When both
  day-of-month and day-of-week are restricted, a day matching either fires (standard cron);
  APScheduler alone would require both.
- Fire times are wall-clock times in the schedule's zone, but APScheduler's own zone handling
  fires a time repeated by a fall-back change twice and moves a skipped one an hour late. So the
  trigger runs on the naive wall clock (UTC, which has no transitions) and each wall time is mapped
  to an instant here: a repeated time to its first occurrence, a skipped time to the first instant
  after the gap. Several skipped times land on that one instant, which fires once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from apscheduler.triggers.base import BaseTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.combining import OrTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from cron_descriptor import CasingTypeEnum, ExpressionDescriptor, Options  # type: ignore[import-untyped]

from rotor_lite.errors import ValidationError

__all__ = [
    "MAX_CRON_LENGTH", "MAX_FIELD_ITEMS", "CronSchedule", "CronSpec", "compile_schedule", "describe", "parse_cron",
    "resolve_timezone", "validate_cron",
]

MAX_CRON_LENGTH = 256
MAX_FIELD_ITEMS = 60

_FIELDS = ("second", "minute", "hour", "day", "month", "day_of_week")
_LIMITS = {"second": (0, 59), "minute": (0, 59), "hour": (0, 23), "day": (1, 31), "month": (1, 12), "day_of_week": (0, 7)}
_LABELS = {
    "second": "second", "minute": "minute", "hour": "hour", "day": "day-of-month", "month": "month",
    "day_of_week": "day-of-week",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_TOKEN = re.compile(r"^(?:\*|(?P<first>[a-z0-9]+)(?:-(?P<last>[a-z0-9]+))?)(?:/(?P<step>\d+))?$")
_OFFSET = re.compile(r"^(?:utc|gmt)?\s*[+-]\d{1,2}(?::?\d{2})?$", re.IGNORECASE)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The Gregorian calendar repeats every 400 years (146,097 days): a date missing from one cycle never comes.
_CYCLE_END = _EPOCH + timedelta(days=146_097)
# Walking past a repeated hour of a per-second cron takes up to 3,600 candidates.
_MAX_CANDIDATES = 20_000


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A validated cron expression: APScheduler field strings plus the text users see."""

    text: str
    second: str
    minute: str
    hour: str
    day: str
    month: str
    day_of_week: str
    day_restricted: bool
    weekday_restricted: bool


def validate_cron(text: object) -> CronSpec:
    """`parse_cron` for a cron that comes in (create, update, preview): also bounded in size.

    A megabyte of `1-59/1,...` would hold the event loop for seconds. Stored crons are parsed
    without the bounds, so a schedule saved before them still fires and can be edited.
    """
    if isinstance(text, str) and len(text) > MAX_CRON_LENGTH:
        raise ValidationError(
            f"cron is {len(text)} characters long; the limit is {MAX_CRON_LENGTH}", field="cron", limit=MAX_CRON_LENGTH
        )
    for name, value in _fields_of(text)[1].items():
        items = value.count(",") + 1
        if items > MAX_FIELD_ITEMS:
            raise ValidationError(
                f"invalid cron: the {_LABELS[name]} field has {items} comma-separated items; the limit is {MAX_FIELD_ITEMS}",
                field="cron", cronField=_LABELS[name], limit=MAX_FIELD_ITEMS,
            )
    return parse_cron(text)


def parse_cron(text: object) -> CronSpec:
    """Validate a 5-field cron (or 6 with seconds first); raises ValidationError naming `cron`."""
    normalized, values = _fields_of(text)
    for name, value in values.items():
        _check_field(name, value)
    weekdays = _weekday_names(values["day_of_week"])
    return CronSpec(
        text=normalized, second=values["second"], minute=values["minute"], hour=values["hour"],
        day=values["day"], month=values["month"], day_of_week=weekdays,
        day_restricted=not values["day"].startswith("*"), weekday_restricted=not values["day_of_week"].startswith("*"),
    )


def _fields_of(text: object) -> tuple[str, dict[str, str]]:
    """The cron with its whitespace normalized, and its six fields by name (aliases expanded, seconds 0 if absent)."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("cron is required", field="cron")
    normalized = " ".join(text.split())
    parts = _ALIASES.get(normalized.lower(), normalized).lower().split(" ")
    if len(parts) == 5:
        parts = ["0", *parts]
    elif len(parts) != 6:
        raise ValidationError(
            f"cron must have 5 fields (minute hour day month weekday) or 6 with seconds first; got {len(parts)}",
            field="cron",
        )
    return normalized, dict(zip(_FIELDS, parts))


def _check_field(name: str, value: str) -> None:
    low, high = _LIMITS[name]
    for token in value.split(","):
        match = _TOKEN.match(token)
        if match is None:
            raise _field_error(name, value, f"'{token}' is not a value, range or step")
        numbers = [_number(name, match.group(g), value) for g in ("first", "last") if match.group(g)]
        for number in numbers:
            if not low <= number <= high:
                raise _field_error(name, value, f"{number} is outside {low}-{high}")
        if len(numbers) == 2 and numbers[0] > numbers[1]:
            raise _field_error(name, value, f"range {token} runs backwards")
        if match.group("step") is not None and int(match.group("step")) == 0:
            raise _field_error(name, value, "a step must be at least 1")


def _number(name: str, text: str, value: str) -> int:
    if text.isdigit():
        return int(text)
    names = {"month": _MONTHS, "day_of_week": _WEEKDAYS}.get(name, ())
    if text in names:
        return names.index(text) + (1 if name == "month" else 0)
    raise _field_error(name, value, f"'{text}' is not a number" + (" or a name" if names else ""))


def _field_error(name: str, value: str, reason: str) -> ValidationError:
    label = _LABELS[name]
    return ValidationError(f"invalid cron: {label} field '{value}': {reason}", field="cron", cronField=label)


def _weekday_names(value: str) -> str:
    """The standard-cron weekday field as APScheduler day names (APScheduler counts from Monday = 0)."""
    days: set[int] = set()
    for token in value.split(","):
        match = _TOKEN.match(token)
        assert match is not None  # checked by _check_field
        step = int(match.group("step") or 1)
        if match.group("first") is None:
            first, last = 0, 6
        else:
            first = _number("day_of_week", match.group("first"), value)
            last = _number("day_of_week", match.group("last"), value) if match.group("last") else first
            if match.group("step") and not match.group("last"):
                last = 7
        days.update(day % 7 for day in range(first, last + 1, step))
    return "*" if len(days) == 7 else ",".join(_WEEKDAYS[day] for day in sorted(days))


def resolve_timezone(name: object) -> str:
    """The canonical IANA name for `name`; raises ValidationError naming `timezone`."""
    if name is None or (isinstance(name, str) and not name.strip()):
        raise ValidationError("timezone is required", field="timezone")
    if not isinstance(name, str):
        raise ValidationError("timezone must be an IANA time zone name such as America/New_York", field="timezone")
    if _OFFSET.match(name.strip()):
        raise ValidationError(
            f"timezone '{name}' is an offset; use an IANA time zone name such as Asia/Kolkata "
            "(offsets do not follow daylight-saving changes)", field="timezone",
        )
    canonical = _zone_names().get(name.strip().lower())
    if canonical is None:
        raise ValidationError(f"timezone '{name}' is not a known IANA time zone", field="timezone")
    return canonical


@lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    return {zone.lower(): zone for zone in available_timezones()}


@lru_cache(maxsize=4096)
def describe(text: str) -> str:
    """The cron in plain English, e.g. "At 09:00, Monday through Friday"."""
    spec = parse_cron(text)
    options = Options()
    options.use_24hour_time_format = True
    options.casing_type = CasingTypeEnum.Sentence
    options.day_of_week_start_index_zero = True
    source = _ALIASES.get(spec.text.lower(), spec.text)
    # cron-descriptor reads both 0 and 7 as Sunday but would name it twice in "0,7".
    parts = source.split(" ")
    parts[-1] = _dedupe_sunday(parts[-1])
    return str(ExpressionDescriptor(" ".join(parts), options).get_description())


def _dedupe_sunday(field: str) -> str:
    tokens = field.split(",")
    if "0" in tokens and "7" in tokens:
        tokens.remove("7")
    return ",".join(tokens)


class CronSchedule:
    """Fire times of one cron expression in one IANA zone, as epoch milliseconds."""

    def __init__(self, spec: CronSpec, zone_name: str) -> None:
        self.spec = spec
        self.zone = ZoneInfo(zone_name)
        self._trigger = _wall_trigger(spec)

    def next_after(self, after_ms: int) -> int | None:
        """The first fire instant strictly after `after_ms`, or None if the cron never fires again."""
        if self._trigger is None:
            return None
        after = _EPOCH + timedelta(milliseconds=after_ms)
        cursor = after.astimezone(self.zone).replace(tzinfo=UTC, fold=0)
        for _ in range(_MAX_CANDIDATES):
            wall = self._trigger.get_next_fire_time(None, cursor + timedelta(microseconds=1))
            if wall is None:
                return None
            instant = self._instant_ms(wall.replace(tzinfo=None))
            if instant > after_ms:
                return instant
            cursor = wall
        return None

    def upcoming(self, after_ms: int, count: int) -> list[int]:
        """The next `count` fire instants after `after_ms` (fewer if the cron stops firing)."""
        found: list[int] = []
        cursor = after_ms
        while len(found) < count:
            nxt = self.next_after(cursor)
            if nxt is None:
                break
            found.append(nxt)
            cursor = nxt
        return found

    def _instant_ms(self, wall: datetime) -> int:
        """A wall time's instant: the first occurrence if repeated, the end of the gap if skipped."""
        instant = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        if instant.astimezone(self.zone).replace(tzinfo=None) == wall:
            return _ms(instant)
        return self._gap_end_ms(wall)

    def _gap_end_ms(self, wall: datetime) -> int:
        # For a skipped wall time, fold=1 applies the offset after the change (an instant before
        # it) and fold=0 the offset before (an instant after it): the transition lies between.
        low = _ms(wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)) // 1000
        high = _ms(wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)) // 1000
        target = self._offset_at(high)
        while high - low > 1:
            middle = (low + high) // 2
            if self._offset_at(middle) == target:
                high = middle
            else:
                low = middle
        return high * 1000

    def _offset_at(self, epoch_s: int) -> timedelta | None:
        return (_EPOCH + timedelta(seconds=epoch_s)).astimezone(self.zone).utcoffset()


def _wall_trigger(spec: CronSpec) -> BaseTrigger | None:
    """The trigger on the naive wall clock, or None if the cron never fires.

    With both day fields restricted a day matching either fires, so the trigger is the OR of two;
    a half that never fires (`0 0 31 2 mon`: the 31st of February) is left out, because APScheduler
    would search it up to the year 9999 on every call (0.1 s each).
    """
    common = {"second": spec.second, "minute": spec.minute, "hour": spec.hour, "month": spec.month, "timezone": UTC}
    if spec.day_restricted and spec.weekday_restricted:
        halves = [{"day": spec.day, "day_of_week": "*"}, {"day": "*", "day_of_week": spec.day_of_week}]
    else:
        halves = [{"day": spec.day, "day_of_week": spec.day_of_week}]
    triggers = [CronTrigger(**days, **common) for days in halves if _ever_fires({**days, **common})]
    if len(triggers) > 1:
        return OrTrigger(triggers)
    return triggers[0] if triggers else None


def _ever_fires(fields: dict[str, Any]) -> bool:
    return CronTrigger(**fields, end_date=_CYCLE_END).get_next_fire_time(None, _EPOCH) is not None


@lru_cache(maxsize=16384)
def compile_schedule(cron: str, zone_name: str) -> CronSchedule:
    """A cached CronSchedule for a stored (already validated) cron and zone."""
    return CronSchedule(parse_cron(cron), zone_name)


def _ms(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
