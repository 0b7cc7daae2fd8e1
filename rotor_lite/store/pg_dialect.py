"""SQLite-dialect statements as PostgreSQL runs them, translated once per statement text.

The store writes its SQL once, for SQLite, with `?` parameters. What differs mechanically is
rewritten here: parameter markers (`?`, `?N` -> `$N`), `BEGIN IMMEDIATE`, `INSERT OR IGNORE`, and
the two ways the store passes a whole list in one JSON parameter:

- `x IN (SELECT value FROM json_each(?))` becomes `x = ANY($n)` (`NOT IN`: `x <> ALL($n)`), the parameter
  decoded into a list
  (PostgreSQL then types the array after `x`, and the index on `x` still serves);
- `json_each(?) AS t` becomes `json_array_elements($n::json) AS t`, whose `t.value` is JSON:
  the statement reads its fields with `->>` (text) and casts them where it compares numbers.

Anything else that differs is written twice in the store module, chosen with `is_postgres`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_IN_JSON_LIST = re.compile(r"(NOT\s+)?IN\s*\(\s*SELECT\s+value\s+FROM\s+json_each\(\s*\?(\d*)\s*\)\s*\)", re.IGNORECASE)
_JSON_EACH = re.compile(r"json_each\(\s*\?(\d*)\s*\)", re.IGNORECASE)
_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO", re.IGNORECASE)
_RETURNING = re.compile(r"\sRETURNING\s", re.IGNORECASE)
_MARKER = re.compile(r"'[^']*'|\?(\d*)")
_WRITES_TO = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(\w+)", re.IGNORECASE)


@dataclass(frozen=True)
class Translated:
    sql: str
    list_params: frozenset[int]  # 0-based indexes of parameters given as JSON lists, passed as arrays
    count: int  # how many parameters the PostgreSQL statement takes
    writes_to: str | None = None  # the table an INSERT, UPDATE or DELETE changes


@lru_cache(maxsize=2048)
def translate(sql: str) -> Translated:
    text = sql.strip()
    if text.upper() == "BEGIN IMMEDIATE":
        return Translated("BEGIN", frozenset(), 0)
    list_markers: set[str] = set()

    def as_any(match: re.Match[str]) -> str:
        token = f"\x00{len(list_markers)}\x00"
        list_markers.add(token)
        compare = "<> ALL" if match.group(1) else "= ANY"
        return f"{compare}({token}?{match.group(2)})"

    text = _IN_JSON_LIST.sub(as_any, text)
    text = _JSON_EACH.sub(lambda m: f"json_array_elements(?{m.group(1)}::json)", text)
    if _INSERT_OR_IGNORE.match(text):
        text = _INSERT_OR_IGNORE.sub("INSERT INTO", text, count=1)
        returning = _RETURNING.search(text)
        if returning:
            text = text[: returning.start()] + " ON CONFLICT DO NOTHING" + text[returning.start():]
        else:
            text += " ON CONFLICT DO NOTHING"
    numbered = _number_markers(text, list_markers)
    target = _WRITES_TO.match(numbered.sql)
    return Translated(numbered.sql, numbered.list_params, numbered.count, target.group(1).lower() if target else None)


def _number_markers(text: str, list_markers: set[str]) -> Translated:
    """`?` and `?N` as `$N`, the way SQLite numbers them: a bare `?` is one past the largest so far."""
    largest = 0
    list_params: set[int] = set()
    out: list[str] = []
    position = 0
    for match in _MARKER.finditer(text):
        out.append(text[position:match.start()])
        position = match.end()
        if match.group(0).startswith("'"):
            out.append(match.group(0))
            continue
        number = int(match.group(1)) if match.group(1) else largest + 1
        largest = max(largest, number)
        for token in list_markers:
            if out[-1].endswith(token):
                out[-1] = out[-1][: -len(token)]
                list_params.add(number - 1)
        out.append(f"${number}")
    out.append(text[position:])
    return Translated("".join(out), frozenset(list_params), largest)
