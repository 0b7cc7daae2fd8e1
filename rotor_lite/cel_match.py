"""`wait_for_event` filters: CEL expressions over the event (cel-python parses and evaluates them).

A filter such as `data.contactId == "c_1" && data.score >= 50` pins `data.contactId` to `"c_1"`:
only an event whose `contactId` is `"c_1"` can match. Waiters are stored under the pinned
equality they have (the first top-level `data.<path> == <literal>` of the conjunction), so an
event looks up its candidates by its own values and evaluates CEL on those alone.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import celpy
import msgspec
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError
from lark import Tree
from lark.exceptions import LarkError

MAX_MATCH_LENGTH = 4096
_LITERAL_WRAPPERS = ("addition", "multiplication", "unary", "member", "primary")


class Match(msgspec.Struct, frozen=True):
    """A compiled filter and the equality it pins down, if any: (dotted path under `data`, canonical JSON)."""

    text: str
    program: Any
    pin: tuple[str, str] | None


class InvalidMatch(ValueError):
    """The filter does not parse as CEL."""


@lru_cache(maxsize=1)
def _env() -> celpy.Environment:
    """Built on first use: making cel-python's parser takes a third of a second."""
    return celpy.Environment()


@lru_cache(maxsize=256)  # a compiled match weighs ~15 KiB: most waits pin a value of their own anyway
def compile_match(text: str) -> Match:
    """Parse `text`; raises InvalidMatch with the parser's reason."""
    if len(text) > MAX_MATCH_LENGTH:
        raise InvalidMatch(f"match is longer than {MAX_MATCH_LENGTH} characters")
    try:
        ast = _env().compile(text)
        program = _env().program(ast)
    except (CELParseError, LarkError, ValueError) as exc:
        raise InvalidMatch(f"match does not parse as CEL: {_first_line(exc)}") from exc
    return Match(text=text, program=program, pin=_pin(ast))


def matches(match: Match, event: dict[str, Any]) -> bool:
    """True when the filter holds for the event (`data`, `name`, `id`, `ts` are its variables).

    A filter that errors on this event (a missing field, a type mismatch) does not match it.
    """
    activation = {"data": json_to_cel(event.get("data")), "event": json_to_cel(event)}
    try:
        result = match.program.evaluate(activation)
    except (CELEvalError, TypeError, ValueError, KeyError):
        return False
    return isinstance(result, celtypes.BoolType) and bool(result)


def pin_values(data: Any, paths: set[str]) -> list[tuple[str, str]]:
    """For each pinned path the event's data has a plain value at: (path, canonical JSON of the value)."""
    found = []
    for path in sorted(paths):
        value: Any = data
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            if value is None or isinstance(value, (str, int, float, bool)):
                found.append((path, canonical(value)))
    return found


def canonical(value: Any) -> str:
    """One spelling per value, so that 50 and 50.0 pin alike (CEL compares them as equal numbers)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return msgspec.json.encode(value).decode()


def _pin(ast: Tree[Any]) -> tuple[str, str] | None:
    for operand in _conjuncts(ast):
        pinned = _pinned_equality(operand)
        if pinned is not None:
            return pinned
    return None


def _conjuncts(ast: Tree[Any]) -> list[Tree[Any]]:
    """The top-level `&&` operands of an expression without `||` or a ternary at its top.

    A parenthesized operand counts as its own conjuncts: `(a == 1 && b) && c` has three.
    """
    expr = ast
    if len(expr.children) != 1 or not _is(expr.children[0], "conditionalor"):
        return []
    disjunction = expr.children[0]
    if len(disjunction.children) != 1:
        return []
    operands: list[Tree[Any]] = []
    stack = [disjunction.children[0]]
    while stack:
        node = stack.pop()
        inner = _parenthesized(node)
        if _is(node, "conditionaland") and len(node.children) > 1:
            stack.extend(reversed(node.children))
        elif _is(node, "conditionaland"):
            stack.append(node.children[0])
        elif inner is not None:
            operands.extend(_conjuncts(inner))
        else:
            operands.append(node)
    return operands


def _parenthesized(node: Any) -> Tree[Any] | None:
    """`( expr )` → the inner `expr`; None for any other operand."""
    inner = _unwrap(node, ("relation", *_LITERAL_WRAPPERS))
    return inner.children[0] if _is(inner, "paren_expr") else None


def _pinned_equality(relation: Any) -> tuple[str, str] | None:
    """`data.a == "x"` (either way round) → ("a", '"x"'); the parser nests it as relation(relation_eq(left), right)."""
    if not (_is(relation, "relation") and len(relation.children) == 2 and _is(relation.children[0], "relation_eq")):
        return None
    (left,), right = relation.children[0].children, relation.children[1]
    left = _unwrap(left, ("relation",))
    for side, other in ((left, right), (right, left)):
        path = _data_path(side)
        literal = _literal_value(other) if path is not None else None
        if path is not None and literal is not _NO_LITERAL:
            return path, canonical(literal)
    return None


_NO_LITERAL = object()


def _data_path(node: Any) -> str | None:
    """`data.a.b` → "a.b"."""
    member = _unwrap(node, ("addition", "multiplication", "unary"))
    names: list[str] = []
    while _is(member, "member") and len(member.children) == 1 and _is(member.children[0], "member_dot"):
        inner, name = member.children[0].children
        names.append(str(name))
        member = inner
    if names and _is(member, "member") and _is(member.children[0], "primary"):
        ident = member.children[0].children[0]
        if _is(ident, "ident") and str(ident.children[0]) == "data":
            return ".".join(reversed(names))
    return None


def _literal_value(node: Any) -> Any:
    """The value of a literal operand (evaluated by cel-python, escapes and all), else `_NO_LITERAL`."""
    literal = _unwrap(node, _LITERAL_WRAPPERS)
    if not _is(literal, "literal"):
        return _NO_LITERAL
    value = _env().program(_as_expression(literal)).evaluate({})
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, (celtypes.IntType, celtypes.UintType)):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if value is None:
        return None
    return _NO_LITERAL  # bytes and the like are never pinned


def _as_expression(literal: Tree[Any]) -> Tree[Any]:
    node: Tree[Any] = literal
    for rule in reversed(("expr", "conditionalor", "conditionaland", "relation", *_LITERAL_WRAPPERS)):
        node = Tree(rule, [node])
    return node


def _unwrap(node: Any, rules: tuple[str, ...]) -> Any:
    while any(_is(node, rule) for rule in rules) and len(node.children) == 1:
        node = node.children[0]
    return node


def _is(node: Any, rule: str) -> bool:
    return isinstance(node, Tree) and node.data == rule


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
