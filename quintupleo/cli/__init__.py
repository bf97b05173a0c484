"""The `quintupleo` (alias `qo`) command line."""

from __future__ import annotations

from typing import Any

import typer

from quintupleo import __version__
from quintupleo.cli import bmc, check, devcloud, env, image, lab

app = typer.Typer(
    name="quintupleo",
    help="Virtual bare metal out of ordinary OpenStack instances.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,    # help as plain text: a `[default: …]` in it is not markup
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
    command = typer.main.get_command(app)
    _name_values(command)
    command()


def _name_values(command: Any) -> None:
    """Help names an option's value after the option (`--state-dir DIR`) or lists its choices
    (`--format table|json|yaml`), never a Python type; flags take no value."""
    for param in getattr(command, "params", []):
        long = [o for o in param.opts if o.startswith("--")]
        if param.metavar is not None or getattr(param, "is_flag", False):
            continue
        if not long:              # an argument: its own name is enough, with no type after it
            param.metavar = param.name.upper()
            param.display_type_rich = lambda ctx: None
            continue
        described = getattr(param, "type_descriptor", None)
        choices = described.choices if described is not None and described.is_choice else None
        param.metavar = "|".join(str(getattr(c, "value", c)) for c in choices) if choices \
            else long[0].rsplit("-", 1)[-1].upper()
    for sub in getattr(command, "commands", {}).values():
        _name_values(sub)
