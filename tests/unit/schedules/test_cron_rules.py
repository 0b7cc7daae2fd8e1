"""Cron parsing, validation, descriptions, and wall-clock fire times across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime

import time

import pytest
from apscheduler.triggers.cron import CronTrigger

from rotor_lite.cron import MAX_CRON_LENGTH, MAX_FIELD_ITEMS, CronSchedule, describe, parse_cron, resolve_timezone
from rotor_lite.errors import ValidationError
from rotor_lite.schemas import SchedulePreview
from rotor_lite.services.schedules import preview


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def iso(value: int) -> str:
    return datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fires(cron: str, zone: str, start: str, count: int) -> list[str]:
    return [iso(t) for t in CronSchedule(parse_cron(cron), zone).upcoming(ms(start), count)]


# Daylight saving ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "cron", "start", "expected"),
    [
        # 2026-11-01: 01:00–02:00 happens twice in New York; 01:30 fires once, at its first (EDT) occurrence.
        ("America/New_York", "30 1 * * *", "2026-10-31T12:00:00+00:00",
         ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]),
        # 2026-10-25: 01:00–02:00 repeats in London (BST → GMT).
        ("Europe/London", "30 1 * * *", "2026-10-24T12:00:00+00:00",
         ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]),
        # 2026-04-05: Lord Howe goes back 30 minutes, 01:30–02:00 repeats.
        ("Australia/Lord_Howe", "45 1 * * *", "2026-04-04T12:00:00+00:00",
         ["2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"]),
    ],
)
def test_a_time_repeated_by_fall_back_fires_once_at_its_first_occurrence(
    zone: str, cron: str, start: str, expected: list[str]
) -> None:
    assert fires(cron, zone, start, 2) == expected


@pytest.mark.parametrize(
    ("zone", "cron", "start", "expected"),
    [
        # 2026-03-08: 02:00–03:00 does not exist in New York; 02:30 fires once at 03:00 EDT.
        ("America/New_York", "30 2 * * *", "2026-03-07T12:00:00+00:00",
         ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]),
        # 2026-03-29: 01:00–02:00 does not exist in London; 01:30 fires at 02:00 BST.
        ("Europe/London", "30 1 * * *", "2026-03-28T12:00:00+00:00",
         ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]),
        # 2026-10-04: Lord Howe skips 02:00–02:30; 02:15 fires at 02:30 (+11).
        ("Australia/Lord_Howe", "15 2 * * *", "2026-10-03T00:00:00+00:00",
         ["2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"]),
    ],
)
def test_a_time_skipped_by_spring_forward_fires_once_right_after_the_gap(
    zone: str, cron: str, start: str, expected: list[str]
) -> None:
    assert fires(cron, zone, start, 2) == expected


def test_every_quarter_hour_through_a_fall_back_never_goes_back_in_time() -> None:
    got = fires("*/15 * * * *", "America/New_York", "2026-11-01T04:50:00+00:00", 6)
    assert got == [
        "2026-11-01T05:00:00Z", "2026-11-01T05:15:00Z", "2026-11-01T05:30:00Z", "2026-11-01T05:45:00Z",
        "2026-11-01T07:00:00Z", "2026-11-01T07:15:00Z",
    ]


def test_skipped_quarter_hours_collapse_into_one_fire_after_the_gap() -> None:
    got = fires("*/15 * * * *", "America/New_York", "2026-03-08T06:40:00+00:00", 3)
    assert got == ["2026-03-08T06:45:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:15:00Z"]


def test_starting_inside_the_repeated_hour_does_not_fire_its_times_again() -> None:
    # 06:10Z is 01:10 EST, the second pass through 01:xx: 01:30 already fired at 05:30Z.
    assert fires("30 1 * * *", "America/New_York", "2026-11-01T06:10:00+00:00", 1) == ["2026-11-02T06:30:00Z"]
    assert fires("* * * * *", "America/New_York", "2026-11-01T06:10:00+00:00", 1) == ["2026-11-01T07:00:00Z"]


def test_a_zone_without_daylight_saving_fires_at_the_same_utc_time_all_year() -> None:
    for start in ("2026-03-07T00:00:00+00:00", "2026-10-31T00:00:00+00:00"):
        assert fires("30 2 * * *", "Asia/Kolkata", start, 3) == [
            f"{day}T21:00:00Z" for day in _days_after(start, 3)
        ]


def _days_after(start: str, count: int) -> list[str]:
    base = datetime.fromisoformat(start)
    return [datetime.fromtimestamp(base.timestamp() + 86_400 * i, UTC).strftime("%Y-%m-%d") for i in range(count)]


def test_apscheduler_alone_gets_these_wrong_which_is_why_we_map_wall_times_ourselves() -> None:
    from zoneinfo import ZoneInfo

    trigger = CronTrigger.from_crontab("30 1 * * *", timezone=ZoneInfo("America/New_York"))
    first = trigger.get_next_fire_time(None, datetime(2026, 11, 1, 0, 0, tzinfo=ZoneInfo("America/New_York")))
    assert first is not None
    again = trigger.get_next_fire_time(first, first)
    assert again is not None and again.astimezone(UTC) != first.astimezone(UTC)
    assert again.date() == first.date()  # it fires 01:30 a second time the same night
    weekday = CronTrigger.from_crontab("0 9 * * 1-5", timezone=UTC)
    saturday = weekday.get_next_fire_time(None, datetime(2026, 5, 16, tzinfo=UTC))
    assert saturday is not None and saturday.weekday() == 5  # from_crontab reads 1-5 as Tuesday–Saturday


# Weekdays, names, seconds ------------------------------------------------------------------


def test_one_to_five_is_monday_to_friday() -> None:
    # 2026-05-15 is a Friday.
    got = fires("0 9 * * 1-5", "America/New_York", "2026-05-15T12:00:00+00:00", 4)
    assert got == ["2026-05-15T13:00:00Z", "2026-05-18T13:00:00Z", "2026-05-19T13:00:00Z", "2026-05-20T13:00:00Z"]


@pytest.mark.parametrize("weekday", ["0", "7", "SUN", "sun", "0,7"])
def test_zero_seven_and_the_name_are_sunday(weekday: str) -> None:
    got = fires(f"0 8 * * {weekday}", "UTC", "2026-05-15T00:00:00+00:00", 2)
    assert got == ["2026-05-17T08:00:00Z", "2026-05-24T08:00:00Z"]


def test_month_and_weekday_names_ranges_and_steps() -> None:
    assert fires("0 0 * JAN-MAR MON-FRI", "UTC", "2026-06-01T00:00:00+00:00", 2) == [
        "2027-01-01T00:00:00Z", "2027-01-04T00:00:00Z",
    ]
    assert fires("0 12 * * */2", "UTC", "2026-05-15T13:00:00+00:00", 3) == [  # Sun, Tue, Thu, Sat
        "2026-05-16T12:00:00Z", "2026-05-17T12:00:00Z", "2026-05-19T12:00:00Z",
    ]


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # Standard cron: the 1st and the 15th, and every Monday.
    assert fires("0 0 1,15 * 1", "UTC", "2026-06-01T00:00:00+00:00", 4) == [
        "2026-06-08T00:00:00Z", "2026-06-15T00:00:00Z", "2026-06-22T00:00:00Z", "2026-06-29T00:00:00Z",
    ]


def test_six_fields_put_seconds_first() -> None:
    assert fires("*/20 * * * * *", "UTC", "2026-06-01T00:00:00.500+00:00", 3) == [
        "2026-06-01T00:00:20Z", "2026-06-01T00:00:40Z", "2026-06-01T00:01:00Z",
    ]
    assert fires("30 0 9 * * *", "UTC", "2026-06-01T00:00:00+00:00", 1) == ["2026-06-01T09:00:30Z"]


def test_aliases() -> None:
    assert fires("@daily", "UTC", "2026-06-01T10:00:00+00:00", 1) == ["2026-06-02T00:00:00Z"]


# Validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("", "cron is required"), ("* * * *", "5 fields"), ("* * * * * * *", "5 fields"),
        ("60 * * * *", "minute field '60'"), ("* 24 * * *", "hour field"), ("* * 0 * *", "day-of-month field"),
        ("* * * 13 *", "month field"), ("* * * * 8", "day-of-week field"), ("* * * * MOO", "day-of-week field"),
        ("5-1 * * * *", "runs backwards"), ("*/0 * * * *", "step"), ("L * * * *", "minute field"),
        ("60 * * * * *", "second field"), ("0 0 31 2 *", "never fires"),
    ],
)
def test_invalid_cron_is_a_422_naming_the_field(cron: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_cron(cron) if words != "never fires" else _never(cron)
    assert info.value.details["field"] == "cron"
    assert words in info.value.message


def _never(cron: str) -> None:
    from rotor_lite.services.schedules import check_cron_and_zone

    check_cron_and_zone(cron, "UTC")


@pytest.mark.parametrize(
    ("zone", "words"),
    [(None, "timezone is required"), ("", "timezone is required"), ("+05:30", "offset"), ("-08:00", "offset"),
     ("UTC+5", "offset"), ("GMT-3", "offset"), ("Mars/Olympus_Mons", "not a known IANA"), ("EDT", "not a known")],
)
def test_bad_timezones_are_422_naming_the_field(zone: str | None, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        resolve_timezone(zone)
    assert info.value.details["field"] == "timezone"
    assert words in info.value.message


def test_iana_names_are_accepted_and_canonicalised() -> None:
    assert resolve_timezone("America/New_York") == "America/New_York"
    assert resolve_timezone("america/new_york") == "America/New_York"
    assert resolve_timezone("Etc/GMT+5") == "Etc/GMT+5"
    assert resolve_timezone("UTC") == "UTC"


# Bounds on the input and on the work ----------------------------------------------------------

# 60 distinct minutes (170 characters) and 24 hours: a long cron that is within both bounds.
EVERY_MINUTE_LISTED = ",".join(str(m) for m in range(60)) + " " + ",".join(str(h) for h in range(24)) + " * * *"


def preview_error(cron: str) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        preview(SchedulePreview(cron=cron, timezone="UTC"), 0)
    return info.value


def test_a_cron_over_256_characters_is_refused_naming_the_limit() -> None:
    at_limit = EVERY_MINUTE_LISTED.ljust(MAX_CRON_LENGTH)
    assert len(preview(SchedulePreview(cron=at_limit, timezone="UTC", count=3), 0)[0]) == 3
    error = preview_error(at_limit + " ")
    assert error.details == {"field": "cron", "limit": 256}
    assert error.message == "cron is 257 characters long; the limit is 256"


def test_the_length_is_checked_before_the_cron_is_parsed() -> None:
    huge = ",".join(["1-59/1"] * 300_000) + " * * * *"  # the 2 MB cron of the field report
    started = time.monotonic()
    error = preview_error(huge)
    assert time.monotonic() - started < 0.5
    assert error.details["limit"] == MAX_CRON_LENGTH and len(error.message) < 100  # the cron is not echoed


@pytest.mark.parametrize(("template", "item", "label"), [
    ("{} * * * *", "0", "minute"), ("0 {} * * *", "1", "hour"), ("0 0 * * {}", "mon", "day-of-week"),
    ("{} * * * * *", "5", "second"),
])
def test_a_field_of_more_than_60_items_is_refused_naming_the_field_and_the_limit(
    template: str, item: str, label: str
) -> None:
    error = preview_error(template.format(",".join([item] * 61)))
    assert error.details == {"field": "cron", "cronField": label, "limit": MAX_FIELD_ITEMS}
    assert f"the {label} field has 61 comma-separated items; the limit is 60" in error.message
    assert preview(SchedulePreview(cron=template.format(",".join([item] * 60)), timezone="UTC"), 0)[0]


def test_stored_crons_are_parsed_without_the_bounds_so_older_schedules_keep_firing() -> None:
    legacy = ",".join(["0"] * 200) + " * * * *"
    assert fires(legacy, "UTC", "2026-06-01T00:00:30+00:00", 1) == ["2026-06-01T01:00:00Z"]


def test_a_never_firing_half_of_a_day_or_weekday_cron_costs_nothing() -> None:
    # The 31st of February never comes: the Mondays of February fire, and 50 of them are quick to list.
    started = time.monotonic()
    got = fires("0 0 31 2 1", "UTC", "2026-01-01T00:00:00+00:00", 50)
    assert time.monotonic() - started < 1.0  # 0.1 s per fire time before (a search to the year 9999)
    assert got[:3] == ["2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z", "2026-02-16T00:00:00Z"] and len(got) == 50


def test_a_preview_from_inside_a_repeated_hour_is_bounded() -> None:
    # São Paulo went back from 00:00 to 23:00 on 2019-02-17: in the repeated hour the 3,600 candidates of a
    # per-second cron already fired. Each cost 0.1 s while the 31st-of-February half was searched (six minutes).
    started = time.monotonic()
    got = fires("* * 23 31 2 6", "America/Sao_Paulo", "2019-02-17T02:00:00+00:00", 2)
    assert time.monotonic() - started < 2.0
    assert got == ["2019-02-24T02:00:00Z", "2019-02-24T02:00:01Z"]  # the next Saturday


def test_a_cron_that_never_fires_is_refused_quickly() -> None:
    started = time.monotonic()
    for cron in ("0 0 30 2 *", "0 0 31 4,6,9,11 *", "* * * 31 2 *"):
        assert "never fires" in preview_error(cron).message
    assert time.monotonic() - started < 1.0


# Descriptions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "text"),
    [
        ("0 9 * * 1-5", "At 09:00, Monday through Friday"),
        ("*/15 * * * *", "Every 15 minutes"),
        ("0 0 1 * *", "At 00:00, on day 1 of the month"),
        ("0 9 * * 0,7", "At 09:00, only on Sunday"),
        ("* * * * * *", "Every second"),
    ],
)
def test_description_in_plain_english(cron: str, text: str) -> None:
    assert describe(cron) == text
