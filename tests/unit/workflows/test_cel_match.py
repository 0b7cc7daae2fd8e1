"""`wait_for_event` filters: the equality a `match` pins down (the waiters' index), canonical values, evaluation."""

from __future__ import annotations

from typing import Any

import pytest

from rotor_lite.cel_match import MAX_MATCH_LENGTH, InvalidMatch, canonical, compile_match, matches, pin_values


@pytest.mark.parametrize(("text", "pin"), [
    ('data.contactId == "c_1"', ("contactId", '"c_1"')),
    ('"c_1" == data.contactId', ("contactId", '"c_1"')),
    ("data.order.id == 7", ("order.id", "7")),
    ('data.a == "x" && data.score >= 50', ("a", '"x"')),
    ('data.score >= 50 && data.a == "x"', ("a", '"x"')),
    ('data.s != "b" && data.t > 1 && data.a == "x"', ("a", '"x"')),
    ('true && data.a == "x"', ("a", '"x"')),
    ('data.a == "x" && data.b == "y"', ("a", '"x"')),  # the first equality is enough
    ('data.a == "x" && (data.b == 1 || data.c == 2)', ("a", '"x"')),
    ('(data.a == "x")', ("a", '"x"')),
    ('(data.b > 1) && (data.a == "x" && data.c)', ("a", '"x"')),
])
def test_an_equality_on_data_is_pinned(text: str, pin: tuple[str, str]) -> None:
    assert compile_match(text).pin == pin


@pytest.mark.parametrize("text", [
    'data.a == "x" || data.b == 1', '(data.a == "x" || data.a == "y")', 'data.a != "x"', "data.score >= 50",
    "data.a == data.b", 'event.name == "x"', '!(data.a == "x")', 'data.a == "x" ? true : false', "data.a == 1 + 1",
    'data["a"] == "x"', 'data.a in ["x"]', 'data.a == b"x"', 'size(data.a) == 1',
])
def test_no_pin_when_no_single_equality_must_hold(text: str) -> None:
    assert compile_match(text).pin is None


@pytest.mark.parametrize(("literal", "value"), [
    ('"x"', '"x"'), ("'single'", '"single"'), ('"é\\n"', '"é\\n"'), ('r"raw\\n"', '"raw\\\\n"'),
    ("7", "7"), ("-7", "-7"), ("0x10", "16"), ("7u", "7"), ("1.0", "1"), ("1.5", "1.5"), ("1e3", "1000"),
    ("-0.0", "0"), ("true", "true"), ("false", "false"), ("null", "null"),
])
def test_each_literal_type_pins_its_canonical_json(literal: str, value: str) -> None:
    assert compile_match(f"data.v == {literal}").pin == ("v", value)
    assert compile_match(f"{literal} == data.v").pin == ("v", value)


def test_canonical_numbers_spell_equal_numbers_alike() -> None:
    assert canonical(50) == canonical(50.0) == canonical(5e1) == "50"
    assert canonical(-0.0) == canonical(0) == "0"
    assert canonical(1.5) == "1.5" and canonical(2**70) == str(2**70)
    assert canonical(True) == "true" != canonical(1)  # CEL never finds true equal to 1
    assert canonical("1") == '"1"' != canonical(1)
    assert canonical(None) == "null"


def test_an_event_looks_up_its_candidates_by_its_pinned_values() -> None:
    data = {"a": {"b": 1.0}, "s": "x", "n": None, "list": [1], "obj": {"k": 1}, "t": True}
    paths = {"a.b", "s", "n", "list", "obj", "t", "missing", "a.missing", "s.deeper"}

    assert pin_values(data, paths) == [("a.b", "1"), ("n", "null"), ("s", '"x"'), ("t", "true")]
    assert pin_values("not an object", {"a"}) == [] and pin_values({"a": 1}, set()) == []


@pytest.mark.parametrize(("text", "data", "expected"), [
    ('data.contactId == "c_1"', {"contactId": "c_1"}, True),
    ('data.contactId == "c_1"', {"contactId": "c_2"}, False),
    ('data.contactId == "c_1"', {}, False),  # a missing field: no match, no error
    ("data.score >= 50", {}, False),
    ("data.score >= 50", {"score": "high"}, False),  # a type mismatch: no match
    ("data.score >= 50", {"score": 50.0}, True),
    ("data.score >= 50", {"score": 49}, False),
    ('data.a.b == 1', {"a": None}, False),
    ('data.a.b == 1', {"a": {"b": 1}}, True),
    ('data.source == "web" || data.source == "mobile"', {"source": "mobile"}, True),
    ('data.source == "web" || data.source == "mobile"', {}, False),
    ('data.a == "x" && data.b != "bounced"', {"a": "x", "b": "opened"}, True),
    ('data.flag == true', {"flag": 1}, False),
    ('data.n == null', {"n": None}, True),
    ("data.a", {"a": "not a bool"}, False),  # a result that is not a bool is no match
    ('event.name == "email.opened"', {}, True),
])
def test_matches(text: str, data: Any, expected: bool) -> None:
    event = {"name": "email.opened", "id": "evt_1", "ts": 1, "data": data}
    assert matches(compile_match(text), event) is expected


def test_a_match_on_data_that_is_not_an_object_is_no_match() -> None:
    assert matches(compile_match('data.a == "x"'), {"name": "e", "id": "evt", "ts": 1, "data": [1, 2]}) is False
    assert matches(compile_match('data.a == "x"'), {"name": "e", "id": "evt", "ts": 1, "data": None}) is False


@pytest.mark.parametrize("text", ["", "data.", "data.a ==", "data.a == == 1", "data.a == 'x", "(data.a == 1", "data.a === 1"])
def test_a_match_that_does_not_parse_is_refused_with_the_reason(text: str) -> None:
    with pytest.raises(InvalidMatch, match="does not parse as CEL"):
        compile_match(text)


def test_a_match_too_long_is_refused() -> None:
    with pytest.raises(InvalidMatch, match="longer than"):
        compile_match("data.a == 1 && " * (MAX_MATCH_LENGTH // 15) + "true")
