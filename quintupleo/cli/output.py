"""One output convention for every command that lists or shows things.

- `--format table|json|yaml` (`-f`): JSON and YAML carry the same keys as the table's columns.
- Results go to stdout. On a terminal a table fits its width; anywhere else (a pipe, a file,
  a CI log) nothing is cut or wrapped: full IDs, paths and hashes.
- Errors go to stderr as one line each, never hard-wrapped (a terminal wraps them itself).
- Files are written with `--output`/`-o` everywhere.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from ruamel.yaml import YAML

UNLIMITED = 100_000     # columns, when nobody's terminal sets the width


class Format(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


FormatOption = Annotated[Format, typer.Option(
    "--format", "-f", help="How to print it: table, json or yaml.")]
OutputOption = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Write to this file instead of stdout.")]

Row = dict[str, Any]


def stdout() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=UNLIMITED, soft_wrap=True)


def stderr() -> Console:
    return Console(stderr=True, soft_wrap=True)


def fail(exc: Exception, code: int = 1) -> typer.Exit:
    """Say what went wrong on one line; the Exit to raise."""
    stderr().print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
    return typer.Exit(code)


def table(rows: Sequence[Row], columns: Sequence[str], title: str | None = None,
          markup: bool = False) -> Table:
    """`markup`: the cells carry Rich markup of ours (colours); otherwise text is shown as is."""
    shown = Table(*columns, title=title)
    for row in rows:
        shown.add_row(*(_cell(row.get(column), markup) for column in columns))
    return shown


def emit(rows: Sequence[Row], columns: Sequence[str], fmt: Format, title: str | None = None,
         document: Any = None) -> None:
    """Print rows as a table, or the document (default: the rows) as JSON or YAML."""
    console = stdout()
    if fmt is Format.table:
        console.print(table(rows, columns, title))
    else:
        console.out(dumps(list(rows) if document is None else document, fmt), end="",
                    highlight=False)


def dumps(document: Any, fmt: Format) -> str:
    if fmt is Format.json:
        return json.dumps(document, indent=2, default=str) + "\n"
    buffer = io.StringIO()
    yaml = YAML()                    # round-trip: keys in the order the table has them
    yaml.default_flow_style = False
    yaml.dump(json.loads(json.dumps(document, default=str)), buffer)
    return buffer.getvalue()


def _cell(value: Any, markup: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v, markup) for v in value)
    return str(value) if markup else escape(str(value))
