"""`quintupleo env`: environments of virtual bare metal on an OpenStack cloud."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from quintupleo.environments import apply, lifecycle, store
from quintupleo.environments.bmc_host import read_served
from quintupleo.environments.inventory import inventory_text
from quintupleo.environments.plan import Kind, ServerParams, plan
from quintupleo.environments.spec import load
from quintupleo.errors import QuintupleOError
from quintupleo.inventory import write_private

app = typer.Typer(help="Environments: networks and bare-metal nodes on an OpenStack cloud.",
                  no_args_is_help=True, rich_markup_mode=None)
console = Console()
errors = Console(stderr=True)


def _fail(exc: Exception) -> None:
    errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
    raise typer.Exit(1)


def _progress() -> tuple[Progress, apply.Progress]:
    bars = Progress(TextColumn("{task.description:>11}"), BarColumn(), MofNCompleteColumn(),
                    console=errors, transient=False)
    tasks: dict[str, TaskID] = {}

    def report(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bars.add_task(phase, total=total)
        bars.update(tasks[phase], completed=done, total=total)
    return bars, report


@app.command()
def create(spec_file: Annotated[Path, typer.Argument(help="The environment spec (YAML).")],
           dry_run: Annotated[bool, typer.Option(help="Print the plan; change nothing.")] = False,
           ) -> None:
    """Create the environment (what is missing of it); nodes end powered off."""
    try:
        if dry_run:
            spec = load(spec_file)
            table = Table("kind", "name", "needs", title=f"plan of {spec.name} on {spec.cloud}")
            for item in plan(spec):
                table.add_row(item.kind.value, item.name, ", ".join(item.needs))
            console.print(table)
            return
        bars, report = _progress()
        with bars:
            done = lifecycle.create(spec_file, report, say=console.print)
    except QuintupleOError as exc:
        _fail(exc)
    running = f", {done.booted} servers running from their image" if done.booted else ""
    console.print(f"[green]✓[/] {done.spec.name}: {done.resources} resources, {done.nodes} "
                  f"nodes powered off{running}, {done.calls} API calls, {done.seconds:.1f} s")


@app.command("list")
def list_() -> None:
    """Environments known on this machine."""
    table = Table("name", "cloud", "state", "nodes", "resources")
    for name in store.names():
        try:
            with lifecycle.opened(name) as journal:
                spec = store.stored_spec(journal)
                state, entries = journal.meta("state") or "?", journal.entries()
            table.add_row(name, spec.cloud, state,
                          str(sum(e.kind is Kind.SERVER for e in entries)), str(len(entries)))
        except QuintupleOError as exc:
            table.add_row(name, "?", f"damaged: {exc}", "", "")
    console.print(table)


@app.command()
def show(name: str) -> None:
    """Every resource of an environment, from its journal."""
    try:
        with lifecycle.opened(name) as journal:
            spec = store.stored_spec(journal)
            state, entries, served = journal.meta("state"), journal.entries(), \
                read_served(journal)
    except QuintupleOError as exc:
        _fail(exc)
    table = Table("kind", "name", "id", "status", "role", title=f"{name} on {spec.cloud} ({state})")
    order = list(Kind)
    roles = {p.name: _role(p.server) for p in plan(spec) if p.server}
    for entry in sorted(entries, key=lambda e: (order.index(e.kind), e.name)):
        table.add_row(entry.kind.value, entry.name, entry.cloud_id or "-", entry.status,
                      roles.get(entry.name, ""))
    console.print(table)
    if served is not None:      # where the BMC host in the cloud answers
        bmc = spec.bmc
        ips = sorted(served["nodes"].values(), key=ipaddress.ip_address)
        ipmi = (f"{len(ips)} addresses ({ips[0]} … {ips[-1]}), port 623" if ips
                else f"{served['address']}, ports from {bmc.ipmi_port_base}")
        scheme = "https" if bmc.tls else "http"
        console.print(f"BMC host: IPMI on {ipmi}; Redfish on "
                      f"{scheme}://{served['address']}:{bmc.redfish_port}", highlight=False,
                      soft_wrap=True)


def _role(server: ServerParams) -> str:
    if server.baremetal:
        return f"{server.role} (node)"
    if server.role == "undercloud":
        return "undercloud"
    return f"{server.role} (image)"      # boot: image, running, not behind the BMC


@app.command()
def delete(name: str) -> None:
    """Delete everything the environment created, also after a crash during create."""
    try:
        bars, report = _progress()
        with bars:
            done = lifecycle.delete(name, report)
    except QuintupleOError as exc:
        _fail(exc)
    console.print(f"[green]✓[/] {name} deleted: {done.calls} API calls, {done.seconds:.1f} s")


@app.command()
def audit(name: str) -> None:
    """Resources tagged or named for the environment that its journal does not hold (leaks).
    Exit code 1 if there is any."""
    try:
        leaks = lifecycle.audit(name)
    except QuintupleOError as exc:
        _fail(exc)
    for leak in leaks:
        console.print(f"{leak.kind.value} {leak.name} {leak.cloud_id}: {leak.why}")
    console.print(f"{len(leaks)} leaked resources")
    if leaks:
        raise typer.Exit(1)


class Format(StrEnum):
    ironic = "ironic"
    instackenv = "instackenv"
    metal3 = "metal3"


class Driver(StrEnum):
    ipmi = "ipmi"
    redfish = "redfish"


@app.command()
def nodes(name: str,
          format: Annotated[Format, typer.Option("--format", "-f")] = Format.ironic,
          driver: Annotated[Driver, typer.Option(
              help="How the tool reaches the BMC.")] = Driver.ipmi,
          interface: Annotated[list[str] | None, typer.Option(
              help="KIND=NAME for Ironic (e.g. boot=ipxe); repeat for more.")] = None,
          output: Annotated[Path | None, typer.Option(
              "--output", "-o", help="Write here (mode 0600) instead of stdout.")] = None) -> None:
    """The environment's nodes for a provisioning tool, with the credentials of its BMC
    (as `quintupleo bmc serve --environment NAME` serves them)."""
    try:
        interfaces = dict(_interface(item) for item in interface or [])
        text = inventory_text(name, format.value, driver.value, interfaces)
    except (QuintupleOError, ValueError) as exc:
        _fail(exc)
    if output is None:
        console.out(text, end="", highlight=False)
    else:
        write_private(output, text)
        errors.print(f"[green]✓[/] wrote {output}")


def _interface(item: str) -> tuple[str, str]:
    kind, sep, value = item.partition("=")
    if not sep or not kind or not value:
        raise ValueError(f"--interface {item!r}: expected KIND=NAME, e.g. boot=ipxe")
    return kind, value
