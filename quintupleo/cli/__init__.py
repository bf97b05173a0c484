"""The `quintupleo` (alias `qo`) command line."""

from __future__ import annotations

import typer

from quintupleo import __version__
from quintupleo.cli import bmc, check, devcloud, env, image, lab

app = typer.Typer(
    name="quintupleo",
    help="Virtual bare metal out of ordinary OpenStack instances.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(devcloud.app, name="devcloud")
app.add_typer(bmc.app, name="bmc")
app.add_typer(env.app, name="env")
app.add_typer(image.app, name="image")
app.add_typer(lab.app, name="lab")
app.command("check")(check.check)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"quintupleo {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """QuintupleO: virtual BMCs, PXE emulation, environments and a local cloud."""


def main() -> None:
    app()
