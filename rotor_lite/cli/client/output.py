"""The one place client commands print through: rich tables and fields, or raw JSON with --json."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["Output", "format_count", "format_value"]

# tables must not fold ids when stdout is a pipe or a file (rich assumes 80 columns there)
_PIPE_WIDTH = 200


class Output:
    """Prints a command's result: rendered for people, raw JSON with --json, nothing with --quiet."""

    def __init__(self, *, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.console = _console(stderr=False)
        self.errors = _console(stderr=True)

    def emit(self, data: Any, render: Callable[[Output, Any], None]) -> None:
        """Show an API result: `render(self, data)` normally, the JSON itself with --json."""
        if self.quiet:
            return
        if self.json_mode:
            self.json(data)
        else:
            render(self, data)

    def json(self, data: Any, *, compact: bool = False) -> None:
        """Print `data` as JSON (indented unless `compact`)."""
        indent = None if compact else 2
        click.echo(json.dumps(data, indent=indent, ensure_ascii=False, default=str))

    def line(self, text: str = "", *, style: str | None = None) -> None:
        """Print one line of literal text (no markup is interpreted)."""
        self.console.print(Text(text, style=style or ""), soft_wrap=True)

    def next_page(self, page: dict[str, Any]) -> None:
        """Tell how to fetch the next page of a list response, when there is one."""
        if page.get("nextCursor"):
            self.line(f"Next page: --cursor {page['nextCursor']}")

    def fields(self, pairs: Iterable[tuple[str, Any]]) -> None:
        """Print `label: value` pairs, aligned."""
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        for label, value in pairs:
            grid.add_row(Text(f"{label}:"), Text(format_value(value)))
        self.console.print(grid)

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> None:
        """Print rows under column headers, kubectl-style (no box)."""
        table = Table(box=None, header_style="bold", pad_edge=False, title=title, title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(Text(format_value(cell)) for cell in row))
        self.console.print(table)

    def block(self, title: str, data: Any) -> None:
        """Print a titled, indented JSON value (a payload, a result)."""
        self.line(f"{title}:", style="bold")
        text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
        for row in text.splitlines():
            self.line(f"  {row}")

    def clear(self) -> None:
        """Clear the terminal (does nothing when stdout is not one)."""
        if not self.quiet and self.console.is_terminal:
            self.console.clear()

    def error(self, message: str, *, detail: str | None = None) -> None:
        """Print an error to stderr; shown even with --quiet."""
        self.errors.print(Text(message, style="bold red"), soft_wrap=True)
        if detail:
            self.errors.print(Text(f"  {detail}"), soft_wrap=True)


def format_value(value: Any) -> str:
    """A cell's text: "-" for None, yes/no for booleans, compact JSON for lists and objects."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def format_count(value: Any) -> str:
    """An integer with thousands separators ("12,450"); other values as they are."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else format_value(value)


def _console(*, stderr: bool) -> Console:
    console = Console(stderr=stderr, markup=False, emoji=False, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = _PIPE_WIDTH
    return console
