"""`quintupleo env`: environments of virtual bare metal on an OpenStack cloud."""

from __future__ import annotations

import ipaddress
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from quintupleo.cli import output
from quintupleo.cli.output import Format, FormatOption, OutputOption
from quintupleo.environments import apply, lifecycle, store
from quintupleo.environments.bmc_host import read_served
from quintupleo.environments.inventory import inventory_text
from quintupleo.environments.plan import Kind, ServerParams, bmc_hosts, plan
from quintupleo.environments.status import COLUMNS as STATUS_COLUMNS
from quintupleo.environments.status import environment_status, serving
from quintupleo.errors import QuintupleOError
from quintupleo.inventory import write_private

app = typer.Typer(help="Environments: networks and bare-metal nodes on an OpenStack cloud.",
                  no_args_is_help=True, rich_markup_mode=None)
errors = output.stderr()
Watch = Annotated[float | None, typer.Option(
    "--watch", "-w", help="Refresh every this many seconds, in place, until Ctrl-C.")]
LIST_COLUMNS = ("name", "cloud", "state", "nodes", "resources")
RESOURCE_COLUMNS = ("kind", "name", "id", "status", "role")


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
           format: FormatOption = Format.table) -> None:
    """Create the environment (what is missing of it); nodes end powered off."""
    try:
        if dry_run:    # the pre-flight, and what create would make, keep and replace
            prepared, _ = lifecycle.prepare(spec_file)
            spec, to_make = prepared.spec, {p.name for p in prepared.to_make}
            output.emit([{"kind": item.kind.value, "name": item.name, "needs": list(item.needs),
                          "action": ("replace" if item.name in prepared.replaced else
                                     "make" if item.name in to_make else "keep")}
                         for item in prepared.planned], ("kind", "name", "needs", "action"),
                        format, f"plan of {spec.name} on {spec.cloud} (pre-flight passed, "
                                f"{prepared.checks} API calls)")
            return
        bars, report = _progress()
        with bars:
            done = lifecycle.create(spec_file, report, say=output.stdout().print)
    except QuintupleOError as exc:
        raise output.fail(exc) from None
    running = f", {done.booted} servers running from their image" if done.booted else ""
    output.stdout().print(f"[green]✓[/] {done.spec.name}: {done.resources} resources, "
                          f"{done.nodes} nodes powered off{running}, {done.calls} API calls "
                          f"(and {done.checks} for the pre-flight), {done.seconds:.1f} s")


@app.command("list")
def list_(format: FormatOption = Format.table,
          all_: Annotated[bool, typer.Option("--all", "-a", help="Deleted ones too.")] = False,
          ) -> None:
    """Environments known on this machine (not those deleted, unless --all)."""
    rows = []
    for name in store.names():
        try:
            with lifecycle.opened(name) as journal:
                spec = store.stored_spec(journal)
                state, entries = journal.meta("state") or "?", journal.entries()
            row: dict[str, Any] = {
                "name": name, "cloud": spec.cloud, "state": state,
                "nodes": sum(e.kind is Kind.SERVER for e in entries), "resources": len(entries)}
        except QuintupleOError as exc:
            row = {"name": name, "cloud": None, "state": f"damaged: {exc}", "nodes": None,
                   "resources": None}
        if all_ or row["state"] != "deleted":
            rows.append(row)
    output.emit(rows, LIST_COLUMNS, format)


@app.command()
def show(name: str, format: FormatOption = Format.table) -> None:
    """Every resource of an environment, from its journal."""
    try:
        with lifecycle.opened(name) as journal:
            spec = store.stored_spec(journal)
            state, entries = journal.meta("state"), journal.entries()
            hosts = {host: read_served(journal, host) for host, _ in
                     bmc_hosts(spec, tuple(p.name for p in plan(spec) if p.node))} \
                if spec.bmc.host is not None else {}
    except QuintupleOError as exc:
        raise output.fail(exc) from None
    order = list(Kind)
    roles = {p.name: _role(p.server) for p in plan(spec) if p.server}
    rows = [{"kind": e.kind.value, "name": e.name, "id": e.cloud_id, "status": e.status,
             "role": roles.get(e.name)}
            for e in sorted(entries, key=lambda e: (order.index(e.kind), e.name))]
    bmc = spec.bmc
    where = []              # where each BMC host in the cloud answers
    for host, served in hosts.items():
        if served is None:
            continue
        ips = sorted(served["nodes"].values(), key=ipaddress.ip_address)
        where.append({"host": host, "ipmi": (
            f"{len(ips)} addresses ({ips[0]} … {ips[-1]}), port 623" if ips
            else f"{served['address']}, ports from {bmc.ipmi_port_base}"),
            "redfish": f"{'https' if bmc.tls else 'http'}://{served['address']}:"
                       f"{bmc.redfish_port}"})
    output.emit(rows, RESOURCE_COLUMNS, format, f"{name} on {spec.cloud} ({state})",
                document={"name": name, "cloud": spec.cloud, "state": state,
                          "resources": rows, "bmc_hosts": where})
    if format is Format.table:
        for shown in where:
            label = "BMC host" if len(hosts) == 1 else f"BMC host {shown['host']}"
            output.stdout().print(f"{label}: IPMI on {shown['ipmi']}; Redfish on "
                                  f"{shown['redfish']}", highlight=False)


def _role(server: ServerParams) -> str:
    if server.baremetal:
        return f"{server.role} (node)"
    if server.role in ("undercloud", "relay"):
        return server.role
    return f"{server.role} (image)"      # boot: image, running, not behind the BMC


@app.command()
def status(name: str, format: FormatOption = Format.table, watch: Watch = None,
           console: Annotated[bool, typer.Option(
               "--console/--no-console", help="Read each node's last console line from the "
               "cloud (a call per node).")] = True) -> None:
    """Each node's power, boot override and health (from the environment's BMC when one serves
    it), what the cloud says of its server, and the last line of its console."""
    def render() -> Any:
        found = environment_status(name, console)
        where = f"BMC at {found.bmc}" if found.bmc else "no BMC serving: power from the " \
                                                         "cloud, boot overrides as kept"
        return found, output.table([n.row() for n in found.nodes], STATUS_COLUMNS,
                                   f"{name} on {found.cloud} · {where}")
    try:
        if watch is None or format is not Format.table:
            found, table = render()
            if format is Format.table:
                output.stdout().print(table)
            else:
                output.emit([], [], format, document=found.document())
            return
        with Live(render()[1], console=output.stdout(), auto_refresh=False) as live:
            while True:
                time.sleep(max(watch, 0.5))
                live.update(render()[1], refresh=True)
    except QuintupleOError as exc:
        raise output.fail(exc) from None
    except KeyboardInterrupt:
        pass


@app.command()
def delete(name: str, force: Annotated[bool, typer.Option(
        help="Delete even while a BMC serves the environment.")] = False) -> None:
    """Delete everything the environment created, also after a crash during create."""
    try:
        where = serving(name)
        if where is not None:
            message = f"a BMC of {name} is serving it at {where}: stop it first"
            if not force:
                raise QuintupleOError(f"{message} (or add --force)")
            errors.print(f"[yellow]warning:[/] {message}; deleting anyway (--force)",
                         highlight=False)
        bars, report = _progress()
        with bars:
            done = lifecycle.delete(name, report)
    except QuintupleOError as exc:
        raise output.fail(exc) from None
    output.stdout().print(f"[green]✓[/] {name} deleted: {done.calls} API calls, "
                          f"{done.seconds:.1f} s")


@app.command()
def forget(name: str, yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Do not ask.")] = False) -> None:
    """Drop an environment's journal without touching the cloud (for one whose cloud is gone):
    says first what may be left behind there."""
    try:
        with lifecycle.opened(name) as journal:
            left = journal.entries()
            cloud = store.stored_spec(journal).cloud
    except QuintupleOError as exc:
        raise output.fail(exc) from None
    if left:
        errors.print(f"{len(left)} resources of {name} may be left in cloud {cloud}:",
                     highlight=False)
        for entry in left:
            errors.print(f"  {entry.kind.value} {entry.name} {entry.cloud_id or '(no ID)'}",
                         highlight=False)
    if left and not yes:
        if not sys.stdin.isatty():
            raise output.fail(QuintupleOError("add --yes to forget it anyway"))
        typer.confirm(f"forget {name}?", abort=True)
    store.forget(name)
    output.stdout().print(f"[green]✓[/] {name} forgotten")


@app.command()
def audit(name: str, format: FormatOption = Format.table) -> None:
    """Resources tagged or named for the environment that its journal does not hold (leaks).
    Exit code 1 if there is any."""
    try:
        leaks = lifecycle.audit(name)
    except QuintupleOError as exc:
        raise output.fail(exc) from None
    rows = [{"kind": leak.kind.value, "name": leak.name, "id": leak.cloud_id, "why": leak.why}
            for leak in leaks]
    if format is Format.table:
        if rows:
            output.stdout().print(output.table(rows, ("kind", "name", "id", "why")))
        output.stdout().print(f"{len(leaks)} leaked resources")
    else:
        output.emit(rows, ("kind", "name", "id", "why"), format)
    if leaks:
        raise typer.Exit(1)


class InventoryKind(StrEnum):
    ironic = "ironic"
    instackenv = "instackenv"
    metal3 = "metal3"


class Driver(StrEnum):
    ipmi = "ipmi"
    redfish = "redfish"


@app.command()
def nodes(name: str,
          kind: Annotated[InventoryKind, typer.Option(
              "--kind", "-k", help="Which tool's inventory.")] = InventoryKind.ironic,
          driver: Annotated[Driver, typer.Option(
              help="How the tool reaches the BMC.")] = Driver.ipmi,
          interface: Annotated[list[str] | None, typer.Option(
              help="KIND=NAME for Ironic (e.g. boot=ipxe); repeat for more.")] = None,
          namespace: Annotated[str, typer.Option(
              help="The Kubernetes namespace of Metal3's BareMetalHosts.")] = "metal3",
          out: OutputOption = None) -> None:
    """The environment's nodes for a provisioning tool, with the credentials of its BMC
    (as `quintupleo bmc serve --environment NAME` serves them)."""
    try:
        interfaces = dict(_interface(item) for item in interface or [])
        text = inventory_text(name, kind.value, driver.value, interfaces, namespace)
    except (QuintupleOError, ValueError) as exc:
        raise output.fail(exc) from None
    if out is None:
        output.stdout().out(text, end="", highlight=False)
    else:
        write_private(out, text)
        errors.print(f"[green]✓[/] wrote {out}")


def _interface(item: str) -> tuple[str, str]:
    kind, sep, value = item.partition("=")
    if not sep or not kind or not value:
        raise ValueError(f"--interface {item!r}: expected KIND=NAME, e.g. boot=ipxe")
    return kind, value
