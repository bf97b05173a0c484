"""`quintupleo check`: can this cloud host environments, and what would be missing?"""

from __future__ import annotations

import json
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from quintupleo.environments.check import CloudCheck
from quintupleo.environments.spec import load
from quintupleo.errors import QuintupleOError

console = Console()


class Format(StrEnum):
    table = "table"
    json = "json"


def check(
    cloud: Annotated[str, typer.Option(envvar="OS_CLOUD", help="clouds.yaml entry.")],
    spec: Annotated[Path | None, typer.Option(
        help="An environment spec: also check the quotas it needs.")] = None,
    format: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Probe a cloud for every feature environments need; exit 1 if a must-have fails."""
    import openstack
    try:
        environment = load(spec) if spec else None
        conn = openstack.connect(cloud=cloud)
        findings = CloudCheck(conn, environment).run()
    except QuintupleOError as exc:
        Console(stderr=True).print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    except Exception as exc:   # openstacksdk's config and auth errors have no common base
        Console(stderr=True).print(f"[red]error:[/] cloud {cloud!r}: {escape(str(exc))}",
                                   highlight=False)
        raise typer.Exit(1) from None
    if format is Format.json:
        console.out(json.dumps([asdict(f) for f in findings], indent=2), highlight=False)
    else:
        table = Table("feature", "result", "detail", "a failure disables",
                      title=f"quintupleo check of {cloud}")
        for f in findings:
            mark = "[green]ok[/]" if f.ok else ("[red]FAIL[/]" if f.must else "[yellow]no[/]")
            table.add_row(f.feature, mark, escape(f.detail), f.disables)
        console.print(table)
    if any(f.must and not f.ok for f in findings):
        raise typer.Exit(1)
