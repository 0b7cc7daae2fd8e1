"""Reading Inngest function definitions out of TypeScript and JavaScript sources, with tree-sitter.

`read_functions(path)` parses every `.ts`/`.tsx`/`.js` file under `path` (skipping `node_modules` and
hidden directories) and returns what each `inngest.createFunction(...)` or `createFunction(...)` call
declares with literals: its id, event and cron triggers, retries and concurrency; and a warning for
each shape it cannot read (a computed id, a spread of options, a trigger held in a variable, an
option with no rotor-lite counterpart). Both call shapes are read: `createFunction(options, trigger,
handler)` (Inngest v3) and `createFunction({..., triggers}, handler)` (v4). Nothing is evaluated.

`inngest_plan(found, ...)` maps them to the import's JSON lines: queues and schedules, or workflow
function registrations (docs/import-inngest.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rotor_lite.schemas import EVENT_NAME, QUEUE_NAME

if TYPE_CHECKING:
    from tree_sitter import Node, Parser

__all__ = ["SOURCE_SUFFIXES", "Found", "InngestFunction", "Trigger", "inngest_plan", "read_functions"]

SOURCE_SUFFIXES = (".ts", ".tsx", ".js")
MAX_RETRIES = 20  # Inngest's ceiling, and rotor-lite's for functions
_READ_OPTIONS = {"id", "name", "retries", "concurrency", "triggers"}
_WRAPPERS = {"as_expression", "satisfies_expression", "parenthesized_expression", "non_null_expression"}
_CRON_ZONE = re.compile(r"^(?:CRON_)?TZ=(\S+)\s+(.+)$")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0", "\n": ""}
_VALID_NAME = re.compile(QUEUE_NAME)
_VALID_EVENT = re.compile(EVENT_NAME)
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_.:-]+")


@dataclass(frozen=True, slots=True)
class Trigger:
    """An event trigger (`value` is the event name) or a cron trigger (`value` the expression, `timezone` its zone)."""

    kind: Literal["event", "cron"]
    value: str
    timezone: str | None = None


@dataclass(slots=True)
class InngestFunction:
    """What one `createFunction` call declares; `where` is `path:line:column` of the call."""

    id: str
    where: str
    triggers: list[Trigger] = field(default_factory=list)
    retries: int | None = None
    concurrency: int | None = None


@dataclass(slots=True)
class Found:
    """The functions read, in file and source order, and the warnings, each `path:line:column: message`."""

    functions: list[InngestFunction] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _Unreadable(Exception):
    """A value that is not a literal: the message says what it is."""


def read_functions(path: Path) -> Found:
    """Every `createFunction(...)` call in the sources at `path` (a file or a directory)."""
    found = Found()
    seen: dict[str, str] = {}
    for source in _source_files(path):
        functions, warnings = _FileReader(source).read()
        found.warnings.extend(warnings)
        for fn in functions:
            if fn.id in seen:
                found.warnings.append(f"{fn.where}: function id {fn.id!r} is also defined at {seen[fn.id]}: skipped")
                continue
            seen[fn.id] = fn.where
            found.functions.append(fn)
    return found


def _source_files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    found: list[Path] = []
    for directory, subdirectories, files in os.walk(path):
        subdirectories[:] = [d for d in subdirectories if d != "node_modules" and not d.startswith(".")]
        found.extend(Path(directory) / name for name in files
                     if name.endswith(SOURCE_SUFFIXES) and not name.endswith(".d.ts"))
    yield from sorted(found)


def _parser_for(path: Path) -> Parser:
    """The grammar for the file's suffix; tree-sitter is imported only when a file is read."""
    from tree_sitter import Language, Parser

    if path.suffix == ".js":
        import tree_sitter_javascript

        return Parser(Language(tree_sitter_javascript.language()))
    import tree_sitter_typescript

    grammar = tree_sitter_typescript.language_tsx() if path.suffix == ".tsx" else tree_sitter_typescript.language_typescript()
    return Parser(Language(grammar))


class _FileReader:
    """Finds the `createFunction` calls of one file and reads each into an `InngestFunction`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._warnings: list[tuple[tuple[int, int], str]] = []

    def read(self) -> tuple[list[InngestFunction], list[str]]:
        """The file's functions in source order, and its warnings in source order."""
        try:
            source = self.path.read_bytes()
        except OSError as exc:
            return [], [f"{self.path}: cannot read: {exc.strerror or exc}"]
        root = _parser_for(self.path).parse(source).root_node
        if root.has_error:
            self.warn(_first_error(root), "syntax errors here: the calls around them may be missed")
        functions = [fn for call in _calls_of_create_function(root) if (fn := self.read_call(call)) is not None]
        return functions, [message for _, message in sorted(self._warnings, key=lambda warning: warning[0])]

    def warn(self, node: Node, message: str) -> None:
        self._warnings.append(((node.start_point[0], node.start_point[1]), f"{self.where(node)}: {message}"))

    def where(self, node: Node) -> str:
        row, column = node.start_point[0], node.start_point[1]
        return f"{self.path}:{row + 1}:{column + 1}"

    def read_call(self, call: Node) -> InngestFunction | None:
        arguments = _named(call.child_by_field_name("arguments"))
        if not arguments:
            self.warn(call, "createFunction() without arguments: skipped")
            return None
        options = _unwrapped(arguments[0])
        if options.type != "object":
            self.warn(options, f"options are not an object literal ({_snippet(options)}): skipped")
            return None
        pairs = self.read_object(options, "options")
        fn_id = self.read_id(options, pairs)
        if fn_id is None:
            return None
        fn = InngestFunction(id=fn_id, where=self.where(call))
        trigger = pairs.get("triggers") if len(arguments) < 3 else arguments[1]
        fn.triggers = self.read_triggers(trigger, call, fn_id)
        if not fn.triggers:
            return None
        if "retries" in pairs:
            fn.retries = self.read_retries(pairs["retries"])
        if "concurrency" in pairs:
            fn.concurrency = self.read_concurrency(pairs["concurrency"])
        self.warn_unread_options(options, pairs)
        return fn

    def read_object(self, node: Node, what: str) -> dict[str, Node]:
        """The literal keys of an object literal and their value nodes; warns about spreads and computed keys."""
        pairs: dict[str, Node] = {}
        for member in _named(node):
            if member.type == "pair":
                key = member.child_by_field_name("key")
                value = member.child_by_field_name("value")
                name = _key_name(key) if key is not None else None
                if name is None or value is None:
                    self.warn(member, f"computed key in {what} ({_snippet(member)}): not read")
                else:
                    pairs[name] = value
            elif member.type == "spread_element":
                self.warn(member, f"spread in {what} ({_snippet(member)}): its fields are not read; check them by hand")
            else:
                self.warn(member, f"{what} member {_snippet(member)} is not a `key: value` pair: not read")
        return pairs

    def read_id(self, options: Node, pairs: dict[str, Node]) -> str | None:
        if "id" in pairs:
            try:
                return _string(pairs["id"])
            except _Unreadable as exc:
                self.warn(pairs["id"], f"computed id ({exc}): skipped; import this function by hand")
                return None
        if "name" in pairs:  # Inngest v2: the id was the slug of the name
            try:
                return _NOT_SLUG.sub("-", _string(pairs["name"]).lower()).strip("-") or None
            except _Unreadable:
                pass
        self.warn(options, "no literal id: skipped")
        return None

    def read_triggers(self, node: Node | None, call: Node, fn_id: str) -> list[Trigger]:
        if node is None:
            self.warn(call, f"function {fn_id!r} has no trigger: skipped")
            return []
        node = _unwrapped(node)
        if node.type != "array":
            trigger = self.read_trigger(node, fn_id, "skipped; import this function by hand")
            return [] if trigger is None else [trigger]
        items = [_unwrapped(item) for item in _named(node)]
        triggers = [trigger for item in items if (trigger := self.read_trigger(item, fn_id, "not imported")) is not None]
        if not triggers:
            self.warn(node, f"function {fn_id!r} has no literal trigger: skipped; import it by hand")
        return triggers

    def read_trigger(self, node: Node, fn_id: str, outcome: str) -> Trigger | None:
        try:
            if node.type == "call_expression":
                return _helper_trigger(node)
            if node.type != "object":
                raise _Unreadable(_snippet(node))
            return self.object_trigger(node, fn_id)
        except _Unreadable as exc:
            self.warn(node, f"trigger of {fn_id!r} is not a literal ({exc}): {outcome}")
            return None

    def object_trigger(self, node: Node, fn_id: str) -> Trigger:
        pairs = self.read_object(node, "trigger")
        if "if" in pairs:
            self.warn(pairs["if"], f"trigger filter `if` of {fn_id!r} is not imported: every such event counts; "
                                   "filter in your code")
        for key in sorted(set(pairs) - {"event", "cron", "if"}):
            self.warn(pairs[key], f"trigger option `{key}` of {fn_id!r} has no rotor-lite counterpart: not imported")
        if "event" in pairs:
            return Trigger("event", _string(pairs["event"]))
        if "cron" in pairs:
            return _cron_trigger(_string(pairs["cron"]))
        raise _Unreadable("neither `event` nor `cron`")

    def read_retries(self, node: Node) -> int | None:
        try:
            retries = _integer(node)
        except _Unreadable as exc:
            self.warn(node, f"retries is not an integer literal ({exc}): not imported")
            return None
        if not 0 <= retries <= MAX_RETRIES:
            self.warn(node, f"retries {retries} is outside 0..{MAX_RETRIES}: not imported")
            return None
        return retries

    def read_concurrency(self, node: Node) -> int | None:
        """The function-wide limit: a number, `{limit}`, or the unkeyed entry of an array of them."""
        node = _unwrapped(node)
        entries = _named(node) if node.type == "array" else [node]
        limits = [limit for entry in entries if (limit := self.concurrency_entry(_unwrapped(entry))) is not None]
        return min(limits) if limits else None

    def concurrency_entry(self, node: Node) -> int | None:
        try:
            if node.type == "number":
                return self.positive_limit(node)
            if node.type != "object":
                raise _Unreadable(_snippet(node))
            pairs = self.read_object(node, "concurrency")
            if "key" in pairs:
                self.warn(node, f"concurrency keyed on {_snippet(pairs['key'])} is not imported: rotor-lite has "
                                "no per-key limit for a queue or a function; a job's concurrencyKey runs one at a time")
                return None
            if "scope" in pairs and _string(pairs["scope"]) != "fn":
                self.warn(node, "concurrency scoped beyond the function: not imported")
                return None
            if "limit" not in pairs:
                raise _Unreadable("no `limit`")
            return self.positive_limit(pairs["limit"])
        except _Unreadable as exc:
            self.warn(node, f"concurrency is not a literal ({exc}): not imported")
            return None

    def positive_limit(self, node: Node) -> int | None:
        limit = _integer(node)
        if limit < 1:
            self.warn(node, f"concurrency limit {limit} is below 1: not imported")
            return None
        return limit

    def warn_unread_options(self, options: Node, pairs: dict[str, Node]) -> None:
        unread = sorted(set(pairs) - _READ_OPTIONS)
        if unread:
            self.warn(options, f"options with no rotor-lite counterpart, not imported: {', '.join(unread)}")


def _calls_of_create_function(root: Node) -> Iterator[Node]:
    """`createFunction(...)` and `<anything>.createFunction(...)` calls, in source order."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "call_expression" and _callee_name(node) == "createFunction":
            yield node
        stack.extend(reversed(node.children))


def _callee_name(call: Node) -> str | None:
    callee = call.child_by_field_name("function")
    if callee is None:
        return None
    if callee.type == "member_expression":
        callee = callee.child_by_field_name("property")
    return _text(callee) if callee is not None and callee.type in ("identifier", "property_identifier") else None


def _helper_trigger(call: Node) -> Trigger:
    """Inngest v4's trigger helpers with a literal first argument: `cron("0 * * * *")`, `eventType("a/b")`."""
    name = _callee_name(call)
    arguments = _named(call.child_by_field_name("arguments"))
    if name == "cron" and arguments:
        return _cron_trigger(_string(arguments[0]))
    if name == "eventType" and arguments:
        return Trigger("event", _string(arguments[0]))
    raise _Unreadable(_snippet(call))


def _cron_trigger(expression: str) -> Trigger:
    """`TZ=Europe/Paris 0 12 * * 5` → the expression and its zone; no prefix → no zone (the import's default)."""
    zoned = _CRON_ZONE.match(expression.strip())
    if zoned:
        return Trigger("cron", zoned.group(2).strip(), zoned.group(1))
    return Trigger("cron", expression.strip())


def _named(node: Node | None) -> list[Node]:
    return [] if node is None else [child for child in node.named_children if child.type != "comment"]


def _unwrapped(node: Node) -> Node:
    """`x as const`, `x satisfies T`, `(x)` and `x!` are `x`."""
    while node.type in _WRAPPERS and node.named_children:
        node = node.named_children[0]
    return node


def _key_name(key: Node) -> str | None:
    if key.type == "property_identifier":
        return _text(key)
    if key.type == "string":
        try:
            return _string(key)
        except _Unreadable:
            return None
    return None


def _string(node: Node) -> str:
    """The value of a string literal, or of a template literal without substitutions."""
    node = _unwrapped(node)
    if node.type not in ("string", "template_string"):
        raise _Unreadable(_snippet(node))
    parts: list[str] = []
    for child in node.named_children:
        if child.type == "string_fragment":
            parts.append(_text(child))
        elif child.type == "escape_sequence":
            parts.append(_unescape(_text(child)))
        else:
            raise _Unreadable(_snippet(node))
    return "".join(parts)


def _unescape(sequence: str) -> str:
    body = sequence[1:]
    if body.startswith("u{"):
        return chr(int(body[2:-1], 16))
    if body[:1] in ("u", "x"):
        return chr(int(body[1:], 16))
    return _ESCAPES.get(body, body)


def _integer(node: Node) -> int:
    node = _unwrapped(node)
    if node.type != "number":
        raise _Unreadable(_snippet(node))
    try:
        return int(_text(node).replace("_", ""), 0)
    except ValueError:
        raise _Unreadable(f"{_text(node)} is not an integer") from None


def _first_error(root: Node) -> Node:
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            return node
        stack.extend(reversed([child for child in node.children if child.has_error or child.is_missing]))
    return root


def _text(node: Node) -> str:
    return (node.text or b"").decode("utf-8", errors="replace")


def _snippet(node: Node, limit: int = 40) -> str:
    text = " ".join(_text(node).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# The plan: what rotor-lite gets for each function ------------------------------------------------


def inngest_plan(
    found: Found, *, timezone: str, serve_url: str | None = None, base_url: str | None = None
) -> list[dict[str, Any]]:
    """The import's JSON lines for `found`; warnings about what does not map are added to `found.warnings`.

    Without `serve_url`, the reference's mapping: one queue per function, named by its id, with its
    triggers in `notes` (and `callback_url` BASE_URL/<id> given `base_url`), plus one schedule per cron
    trigger. With `serve_url`, one workflow function registration per function, served there.
    """
    lines: list[dict[str, Any]] = []
    for fn in found.functions:
        triggers = _valid_triggers(fn, found.warnings)
        if not triggers:
            continue
        name = _name_for(fn, found.warnings)
        if serve_url is None:
            lines.extend(_queue_lines(fn, name, triggers, timezone, base_url))
        else:
            lines.append(_function_line(fn, name, triggers, timezone, serve_url, found.warnings))
    return lines


def _queue_lines(
    fn: InngestFunction, name: str, triggers: list[Trigger], timezone: str, base_url: str | None
) -> list[dict[str, Any]]:
    config: dict[str, Any] = {"name": name}
    if base_url:
        config["callback_url"] = f"{base_url.rstrip('/')}/{name}"
    if fn.concurrency is not None:
        config["concurrency"] = fn.concurrency
    if fn.retries is not None:
        config["retry_attempts"] = fn.retries + 1  # Inngest counts retries after the first attempt
    config["notes"] = "; ".join(f"{t.kind}: {_described(t)}" for t in triggers)
    lines: list[dict[str, Any]] = [{"type": "queue", "config": config}]
    lines.extend(
        {"type": "schedule", "config": {"queue": name, "cron": t.value, "timezone": t.timezone or timezone}}
        for t in triggers if t.kind == "cron"
    )
    return lines


def _function_line(
    fn: InngestFunction, name: str, triggers: list[Trigger], timezone: str, serve_url: str, warnings: list[str]
) -> dict[str, Any]:
    first, *rest = triggers
    if rest:
        others = ", ".join(f"{t.kind} {_described(t)}" for t in rest)
        warnings.append(f"{fn.where}: a rotor-lite function has one trigger: {name!r} is registered with "
                        f"{first.kind} {_described(first)}; not imported: {others}")
    config: dict[str, Any] = {"id": name, "serve_url": serve_url, "trigger_type": first.kind}
    if first.kind == "event":
        config["trigger_event"] = first.value
    else:
        config["cron"], config["timezone"] = first.value, first.timezone or timezone
    if fn.retries is not None:
        config["retries"] = fn.retries
    if fn.concurrency is not None:
        config["concurrency"] = fn.concurrency
    return {"type": "function", "config": config}


def _valid_triggers(fn: InngestFunction, warnings: list[str]) -> list[Trigger]:
    valid = []
    for trigger in fn.triggers:
        if trigger.kind == "event" and not _VALID_EVENT.match(trigger.value):
            warnings.append(f"{fn.where}: event name {trigger.value!r} of {fn.id!r} is not valid in rotor-lite "
                            f"(it must match {EVENT_NAME}): not imported")
        else:
            valid.append(trigger)
    return valid


def _name_for(fn: InngestFunction, warnings: list[str]) -> str:
    if _VALID_NAME.match(fn.id):
        return fn.id
    name = _NOT_IN_NAME.sub("-", fn.id).strip("-_.:")[:128] or "function"
    warnings.append(f"{fn.where}: id {fn.id!r} is not a valid rotor-lite name: imported as {name!r}")
    return name


def _described(trigger: Trigger) -> str:
    if trigger.kind == "cron" and trigger.timezone:
        return f"TZ={trigger.timezone} {trigger.value}"
    return trigger.value
