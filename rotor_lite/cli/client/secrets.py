"""`rotor secrets ...`: the vault. Values go in; only names and hints come back."""

from __future__ import annotations

import sys
from typing import Any

import click

from rotor_lite.cli.client.context import Session, client_command
from rotor_lite.cli.client.output import Output

__all__ = ["secrets"]


@click.group("secrets")
def secrets() -> None:
    """Create, list, rotate and delete secrets referenced as ${{ secrets.NAME }}."""


def _value(value: str | None, stdin: bool) -> str:
    if stdin:
        text = sys.stdin.read()
        return text[:-1] if text.endswith("\n") else text
    if value is None:
        return str(click.prompt("Value", hide_input=True, err=True))
    return value


_VALUE_OPTIONS = (
    click.option("--value", help="The secret value (prefer --stdin or the prompt: shell history keeps options)."),
    click.option("--stdin", "from_stdin", is_flag=True, help="Read the value from standard input."),
)


def _value_options(func: Any) -> Any:
    for option in reversed(_VALUE_OPTIONS):
        func = option(func)
    return func


@secrets.command("create")
@click.argument("name")
@_value_options
@client_command
def create_secret(session: Session, /, *, name: str, value: str | None, from_stdin: bool) -> None:
    """Store secret NAME (UPPER_SNAKE_CASE)."""
    plaintext = _value(value, from_stdin)
    with session.client() as rotor:
        created = rotor.secrets.create(name, plaintext)
    session.output.emit(created, lambda out, s: out.line(f"Created secret {s.get('name')} ({s.get('value_hint')})."))


@secrets.command("list")
@client_command
def list_secrets(session: Session, /) -> None:
    """List secrets: NAME, HINT, CREATED."""
    with session.client() as rotor:
        response = rotor.secrets.list()

    def render(out: Output, data: dict[str, Any]) -> None:
        items = data.get("data") or []
        if not items:
            out.line("No secrets yet. Create one with: rotor secrets create NAME --stdin")
            return
        out.table(["NAME", "HINT", "CREATED"],
                  ([s.get("name"), s.get("value_hint"), (s.get("created_at") or "")[:10]] for s in items))

    session.output.emit(response, render)


@secrets.command("rotate")
@click.argument("name")
@_value_options
@client_command
def rotate_secret(session: Session, /, *, name: str, value: str | None, from_stdin: bool) -> None:
    """Replace the value of secret NAME; queued jobs use it from their next dispatch."""
    plaintext = _value(value, from_stdin)
    with session.client() as rotor:
        rotated = rotor.secrets.rotate(name, plaintext)
    session.output.emit(rotated, lambda out, s: out.line(f"Rotated secret {s.get('name')} ({s.get('value_hint')})."))


@secrets.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@client_command
def delete_secret(session: Session, /, *, name: str, force: bool) -> None:
    """Delete secret NAME (jobs still referencing it fail with `unknown secret NAME`)."""
    if not force:
        click.confirm(f"Delete secret {name}?", abort=True, err=True)
    with session.client() as rotor:
        rotor.secrets.delete(name)
    session.output.emit({"name": name, "deleted": True}, lambda out, _: out.line(f"Deleted secret {name}."))
