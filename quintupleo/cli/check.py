"""`quintupleo check`: can this cloud host environments, and what would be missing?"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from quintupleo.cli import output
from quintupleo.cli.output import Format, FormatOption
from quintupleo.environments.check import CloudCheck
from quintupleo.environments.spec import load
from quintupleo.errors import QuintupleOError

COLUMNS = ("feature", "ok", "must", "detail", "disables")


def check(
    cloud: Annotated[str, typer.Option(envvar="OS_CLOUD", help="clouds.yaml entry.")],
    spec: Annotated[Path | None, typer.Option(
        help="An environment spec: also check the quotas it needs.")] = None,
    format: FormatOption = Format.table,
) -> None:
    """Probe a cloud for every feature environments need; exit 1 if a must-have fails."""
    import openstack
    try:
        environment = load(spec) if spec else None
        conn = openstack.connect(cloud=cloud)
        findings = CloudCheck(conn, environment).run()
    except QuintupleOError as exc:
        raise output.fail(exc) from None
    except Exception as exc:   # openstacksdk's config and auth errors have no common base
        raise output.fail(RuntimeError(f"cloud {cloud!r}: {exc}")) from None
    rows = [asdict(f) for f in findings]
    shown = [{**row, "ok": "[green]yes[/]" if row["ok"] else (
        "[red]FAIL[/]" if row["must"] else "[yellow]no[/]"), "detail": escape(row["detail"]),
              "disables": escape(row["disables"])} for row in rows]
    if format is Format.table:
        output.stdout().print(output.table(shown, COLUMNS, f"quintupleo check of {cloud}",
                                           markup=True))
    else:
        output.emit(rows, COLUMNS, format)
    if any(f.must and not f.ok for f in findings):
        raise typer.Exit(1)
