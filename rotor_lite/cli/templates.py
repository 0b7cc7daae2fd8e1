"""`rotor template list|add|apply`: scaffold a runnable starter project from a template shipped with rotor-lite.

The templates are package data under `rotor_lite/templates/`. In `<name>/`, `template.toml` says what
the template is (`description`, `kind`: "workflow" or "callback", `shared`: extra files it takes from
`_shared/`, `rules`: its own rules for coding agents); every other file is written to the project. A
project also gets `_shared/`'s files for its kind, the fixtures each shared module brings to
`tests/conftest.py` (`tests/conftest.<module>.py.tmpl`), and `AGENTS.md` (the same text as `CLAUDE.md`).
`{{name}}` placeholders are filled in and a `.tmpl` suffix is dropped. A file that exists is never
overwritten without --force.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import click

from rotor_lite import __version__
from rotor_lite.cli.client.output import Output

__all__ = ["Template", "available_templates", "load_template", "render_template", "template"]

_SHARED = "_shared"
_KIND_FILES = {
    "workflow": ("app.py.tmpl",),
    "callback": ("callback_app.py.tmpl",),
}
_EVERY_PROJECT = ("pyproject.toml.tmpl", "requirements.txt.tmpl", "tests/conftest.py.tmpl", "tests/support.py.tmpl")
_AGENT_RULES = ("AGENTS.md", "CLAUDE.md")
_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")


@dataclass(frozen=True, slots=True)
class Template:
    """A template's manifest (`template.toml`) and where its files are."""

    name: str
    description: str
    kind: str
    shared: tuple[str, ...]
    rules: str
    root: Traversable


def _templates_root() -> Traversable:
    return files("rotor_lite") / "templates"


def available_templates() -> list[Template]:
    """Every template shipped with rotor-lite, by name."""
    names = sorted(entry.name for entry in _templates_root().iterdir() if entry.is_dir() and not entry.name.startswith("_"))
    return [load_template(name) for name in names]


def load_template(name: str) -> Template:
    """The template `name`; a UsageError naming the others when there is none."""
    root = _templates_root() / name
    manifest = root / "template.toml"
    if name.startswith("_") or not manifest.is_file():
        names = ", ".join(t.name for t in available_templates())
        raise click.UsageError(f"no template {name!r}; the templates are: {names}")
    data: dict[str, Any] = tomllib.loads(manifest.read_text(encoding="utf-8"))
    return Template(
        name=name, description=data["description"], kind=data["kind"], shared=tuple(data.get("shared", ())),
        rules=data["rules"].strip(), root=root,
    )


def render_template(template: Template, project: str) -> dict[str, str]:
    """The project's files (relative path → text) with the placeholders filled in."""
    values = {
        "project": project, "template": template.name, "description": template.description, "kind": template.kind,
        "rules": template.rules, "rotor_lite_version": __version__,
    }
    shared = _templates_root() / _SHARED
    taken = (*_KIND_FILES[template.kind], *template.shared)
    sources: dict[str, list[Traversable]] = {relative: [_at(shared, relative)] for relative in (*_EVERY_PROJECT, *taken)}
    for relative in taken:  # a shared module brings its fixtures along: tests/conftest.<module>.py.tmpl
        fixtures = _at(shared, f"tests/conftest.{relative.removesuffix('.py.tmpl')}.py.tmpl")
        if fixtures.is_file():
            sources["tests/conftest.py.tmpl"].append(fixtures)
    sources.update((relative, [entry]) for relative, entry in _walk(template.root) if relative != "template.toml")
    rendered = {
        relative.removesuffix(".tmpl"): "".join(_fill(part.read_text(encoding="utf-8"), values, relative) for part in parts)
        for relative, parts in sources.items()
    }
    agent_rules = _fill((shared / "AGENTS.md.tmpl").read_text(encoding="utf-8"), values, "AGENTS.md.tmpl")
    rendered.update(dict.fromkeys(_AGENT_RULES, agent_rules))
    return dict(sorted(rendered.items()))


def _walk(root: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    found: list[tuple[str, Traversable]] = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__":
            continue
        relative = f"{prefix}{entry.name}"
        found.extend(_walk(entry, f"{relative}/") if entry.is_dir() else [(relative, entry)])
    return found


def _at(root: Traversable, relative: str) -> Traversable:
    entry = root
    for part in relative.split("/"):
        entry = entry / part
    return entry


def _fill(text: str, values: dict[str, str], source: str) -> str:
    def value(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise click.ClickException(f"template file {source} uses an unknown placeholder {match.group(0)}")
        return values[match.group(1)]

    return _PLACEHOLDER.sub(value, text)


@click.group("template")
def template() -> None:
    """Scaffold a runnable starter project (workflows or callbacks) from a template."""


@template.command("list")
@click.option("--json", "json_output", is_flag=True, help="Print the templates as JSON.")
def list_templates(*, json_output: bool) -> None:
    """List the templates: name, kind (workflow or callback) and what each one does."""
    rows = [{"name": t.name, "kind": t.kind, "description": t.description} for t in available_templates()]
    Output(json_mode=json_output).emit(
        rows, lambda out, data: out.table(["NAME", "KIND", "DESCRIPTION"], ([r["name"], r["kind"], r["description"]] for r in data))
    )


@click.command("add")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=".", show_default=True,
              help="Directory to write the project into (created if missing).")
@click.option("--force", is_flag=True, help="Overwrite files that exist already.")
@click.option("--json", "json_output", is_flag=True, help="Print what was written as JSON.")
def add(*, name: str, directory: Path, force: bool, json_output: bool) -> None:
    """Write the template NAME into a directory as a runnable project (see `rotor template list`).

    Files that exist are listed and nothing is written (exit 1) unless --force is given.
    """
    chosen = load_template(name)
    rendered = render_template(chosen, directory.resolve().name)
    existing = [relative for relative in rendered if (directory / relative).exists()]
    if existing and not force:
        click.echo(f"Nothing written: these files exist in {directory} (--force overwrites them):", err=True)
        for relative in existing:
            click.echo(f"  {relative}", err=True)
        raise click.exceptions.Exit(1)
    for relative, text in rendered.items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    result = {"template": chosen.name, "directory": str(directory), "files": list(rendered), "overwritten": existing}
    Output(json_mode=json_output).emit(result, _render_added)


template.add_command(add)
template.add_command(add, "apply")


def _render_added(output: Output, result: dict[str, Any]) -> None:
    output.line(f"Wrote the {result['template']} template into {result['directory']}:")
    for relative in result["files"]:
        mark = " (overwritten)" if relative in result["overwritten"] else ""
        output.line(f"  {relative}{mark}")
    output.line(f"Next: {Path(result['directory']) / 'README.md'} tells how to run it against a local rotor-lite, "
                "and how to run its test.")
