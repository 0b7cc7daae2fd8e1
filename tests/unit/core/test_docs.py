"""The project's documentation stays true to the code and inside the repository.

- docs/api.md names every route of the OpenAPI document (`GET /doc`) in a heading, and no other,
  and each route's section gives its success status, its query parameters and its body fields;
  every field of every schema of the document appears in it.
- docs/configuration.md has a row per setting with its default and its environment variable, and
  rotor.toml.example has every setting; the systemd unit shown in docs/operations.md is deploy's.
- README.md and docs/*.md link only to files of the repository, and never to the design notes
  that live outside it.
"""

from __future__ import annotations

import re
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import pytest

from rotor_lite.config import Settings

ROOT = Path(__file__).parents[3]
DOCS = ROOT / "docs"
API_DOC = DOCS / "api.md"
CONFIG_DOC = DOCS / "configuration.md"
ROUTE = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s]*)`")
HEADING = re.compile(r"^(#{1,6}) (.*)$")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SELF_ROUTES = {("GET", "/doc")}  # the document's own route, which it does not list
OUTSIDE = ("../shared", "shared/design", "shared/reference", "API.md", "rotor-docs.md")


@cache
def openapi_document() -> dict[str, Any]:
    from rotor_lite.api.app import create_app  # the server's modules only for the tests that need them
    from rotor_lite.api.openapi import build_document
    from rotor_lite.config import load_settings

    with warnings.catch_warnings():  # Litestar's notices about handler signatures, not about routes
        warnings.simplefilter("ignore")
        return build_document(create_app(load_settings(env={})))


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in openapi_document()["paths"].items() for method, op in ops.items()]


def without_code_blocks(markdown: str) -> list[str]:
    """The lines outside fenced code blocks."""
    kept, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            kept.append(line)
    return kept


def route_sections(markdown: str) -> dict[tuple[str, str], str]:
    """Each route named in a heading (`### \\`GET /v1/queues\\``), with the text up to the next heading
    of the same or a higher level."""
    lines = without_code_blocks(markdown)
    found: dict[tuple[str, str], str] = {}
    for start, line in enumerate(lines):
        heading = HEADING.match(line)
        if not heading:
            continue
        level = len(heading.group(1))
        end = next((i for i in range(start + 1, len(lines))
                    if (h := HEADING.match(lines[i])) and len(h.group(1)) <= level), len(lines))
        for method, path in ROUTE.findall(heading.group(2)):
            found[(method, path)] = "\n".join(lines[start:end])
    return found


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def names_field(text: str, name: str) -> bool:
    return any(re.search(rf"(?<![\w.-]){re.escape(spelling)}(?![\w-])", text) for spelling in {name, camel(name)})


def schema_of(ref_or_schema: dict[str, Any]) -> dict[str, Any]:
    ref = ref_or_schema.get("$ref")
    if ref is None:
        return ref_or_schema
    schema: dict[str, Any] = openapi_document()["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


# The API reference -----------------------------------------------------------------------------


def test_api_md_names_every_route_of_the_openapi_document_and_no_other() -> None:
    documented = set(route_sections(API_DOC.read_text()))
    served = {(method, path) for method, path, _ in operations()} | SELF_ROUTES

    missing, unknown = sorted(served - documented), sorted(documented - served)
    assert (missing, unknown) == ([], []), "(routes of GET /doc not in docs/api.md, routes docs/api.md invents)"


def test_each_route_section_gives_its_status_query_parameters_and_body_fields() -> None:
    sections = route_sections(API_DOC.read_text())
    missing = []
    for method, path, op in operations():
        section = sections.get((method, path), "")
        statuses = [code for code in op["responses"] if code != "default"]
        missing += [f"{method} {path}: status {code}" for code in statuses if not re.search(rf"`{code}\b", section)]
        queries = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
        missing += [f"{method} {path}: ?{name}" for name in queries if f"`{name}`" not in section]
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        fields = schema_of(body).get("properties", {}) if body else {}
        missing += [f"{method} {path}: body field {name}" for name in fields if not names_field(section, name)]
    assert missing == []


def test_every_field_of_every_schema_of_the_document_appears_in_api_md() -> None:
    text = "\n".join(without_code_blocks(API_DOC.read_text()))
    missing = [
        f"{schema}.{field}" for schema, body in openapi_document()["components"]["schemas"].items()
        for field in body.get("properties", {}) if not names_field(text, field)
    ]
    assert missing == []


# The configuration guide -----------------------------------------------------------------------


def settings_rows(struct: type[msgspec.Struct], value: Any, keys: tuple[str, ...] = ()) -> list[tuple[str, str, str]]:
    """(dotted key, default as TOML, environment variable) of every setting below `struct`."""
    rows = []
    for field in msgspec.structs.fields(struct):
        default, key = getattr(value, field.name), (*keys, field.encode_name)
        if isinstance(default, msgspec.Struct):
            rows += settings_rows(type(default), default, key)
        else:
            rows.append((".".join(key), toml_value(default), "ROTOR_" + "_".join(key).upper().replace("-", "_")))
    return rows


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return str(value)


def config_rows() -> dict[str, str]:
    """The rows of configuration.md's tables, by the dotted key in their first cell."""
    rows = {}
    for line in without_code_blocks(CONFIG_DOC.read_text()):
        cell = re.match(r"\| `([a-z_-]+(?:\.[a-z_-]+)+)` \|", line)  # [plans.self-hosted] has a dash
        if cell:
            rows[cell.group(1)] = line
    return rows


def test_configuration_md_gives_every_setting_with_its_default_and_environment_variable() -> None:
    settings = settings_rows(Settings, Settings())
    rows = config_rows()
    wrong = [key for key, default, env in settings
             if key not in rows or f"`{default}`" not in rows[key] or f"`{env}`" not in rows[key]]

    assert wrong == [], "settings whose row (key, `default`, `ROTOR_…`) is missing from docs/configuration.md"
    assert sorted(set(rows) - {key for key, _, _ in settings}) == [], "rows of settings that do not exist"


def test_rotor_toml_example_holds_every_setting() -> None:
    example = msgspec.toml.decode((ROOT / "rotor.toml.example").read_bytes())

    def present(key: str) -> bool:
        table: Any = example
        for part in key.split("."):
            if not isinstance(table, dict) or part not in table:
                return False
            table = table[part]
        return True

    assert [key for key, _, _ in settings_rows(Settings, Settings()) if not present(key)] == []


def test_the_systemd_unit_in_operations_md_is_the_one_in_deploy() -> None:
    blocks = re.findall(r"```ini\n(.*?)```", (DOCS / "operations.md").read_text(), flags=re.DOTALL)
    assert blocks == [(ROOT / "deploy" / "rotor-lite.service").read_text()]


# Links -------------------------------------------------------------------------------------------


def documentation_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings: lower case, punctuation dropped, spaces as hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    found = set()
    for line in without_code_blocks(markdown):
        heading = HEADING.match(line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(2).strip().lower()).replace(" ", "-")
            found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
            seen[slug] = seen.get(slug, 0) + 1
    return found


def broken_links(path: Path) -> list[str]:
    text = "\n".join(re.sub(r"`[^`]*`", "", line) for line in without_code_blocks(path.read_text()))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.is_relative_to(ROOT) or not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
            broken.append(target)
    return broken


@pytest.mark.parametrize("path", documentation_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_lead_to_files_of_the_repository(path: Path) -> None:
    assert broken_links(path) == []


@pytest.mark.parametrize("path", documentation_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_document_mentions_the_notes_outside_the_repository(path: Path) -> None:
    text = path.read_text()
    assert [word for word in OUTSIDE if word in text] == []


def test_the_docs_index_links_every_document() -> None:
    index = (DOCS / "README.md").read_text()
    assert [p.name for p in sorted(DOCS.glob("*.md")) if p.name != "README.md" and f"]({p.name})" not in index] == []
