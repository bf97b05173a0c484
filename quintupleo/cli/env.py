"""`quintupleo env`: environments of virtual bare metal on an OpenStack cloud."""

from __future__ import annotations

import ipaddress
import json
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from quintupleo.environments import apply, store
from quintupleo.environments.bmc_host import BmcHost, read_served
from quintupleo.environments.cloud import CloudOps
from quintupleo.environments.inventory import inventory_text
from quintupleo.environments.journal import Journal
from quintupleo.environments.plan import Kind, plan
from quintupleo.environments.spec import EnvironmentSpec, load
from quintupleo.errors import QuintupleOError
from quintupleo.inventory import write_private

app = typer.Typer(help="Environments: networks and bare-metal nodes on an OpenStack cloud.",
                  no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


def _fail(exc: Exception) -> None:
    errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
    raise typer.Exit(1)


def _ops(spec: EnvironmentSpec, journal: Journal | None = None) -> CloudOps:
    """The cloud calls for SPEC; with the journal, also what a BMC host needs."""
    import openstack
    try:
        conn = openstack.connect(cloud=spec.cloud)
    except Exception as exc:   # openstacksdk raises several kinds for a bad clouds.yaml entry
        raise QuintupleOError(f"cloud {spec.cloud!r}: {exc}") from None
    host = None
    if journal is not None and spec.bmc.host is not None:
        host = BmcHost(spec, journal, store.bmc_password(journal))
    return CloudOps(conn, spec, host)


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
        spec = load(spec_file)
        planned = plan(spec)
        if dry_run:
            table = Table("kind", "name", "needs", title=f"plan of {spec.name} on {spec.cloud}")
            for item in planned:
                table.add_row(item.kind.value, item.name, ", ".join(item.needs))
            console.print(table)
            return
        journal = store.open_journal(spec.name, must_exist=False)
        recorded = journal.meta("spec")
        raw = json.dumps(_raw(spec_file))
        if recorded is not None and recorded != raw and journal.entries():
            raise QuintupleOError(f"environment {spec.name} exists with another spec; delete "
                                  "it first or use another name")
        journal.set_meta("spec", raw)
        journal.set_meta("state", "creating")
        ops = _ops(spec, journal)
        if spec.bmc.boot_strategy != "none":
            _ensure_ipxe_images(ops.conn)
        started = time.monotonic()
        bars, report = _progress()
        with bars:
            ids = apply.create(ops, journal, planned, report)
        journal.set_meta("state", "created")
    except QuintupleOError as exc:
        _fail(exc)
    nodes = sum(1 for p in planned if p.kind is Kind.SERVER and p.params["baremetal"])
    booted = sum(1 for p in planned if p.kind is Kind.SERVER and not p.params["baremetal"]
                 and p.params["role"] != "undercloud")
    running = f", {booted} servers running from their image" if booted else ""
    console.print(f"[green]✓[/] {spec.name}: {len(ids)} resources, {nodes} nodes powered off"
                  f"{running}, {ops.calls} API calls, {time.monotonic() - started:.1f} s")


def _ensure_ipxe_images(conn: Any) -> None:
    """The images network boots need: shared by every environment, kept when one is deleted."""
    from quintupleo.cli.image import default_dir
    from quintupleo.images.glance import publish_ipxe
    from quintupleo.images.ipxe import build
    for image in build(default_dir()):
        done = publish_ipxe(conn, image)
        console.print(f"iPXE image {done.name}: {'reused' if done.reused else 'uploaded'} "
                      f"({done.id})")


def _raw(spec_file: Path) -> Any:
    from ruamel.yaml import YAML
    return YAML(typ="safe").load(spec_file.read_text())


@app.command("list")
def list_() -> None:
    """Environments known on this machine."""
    table = Table("name", "cloud", "state", "nodes", "resources")
    for name in store.names():
        journal = store.open_journal(name)
        try:
            spec = store.stored_spec(journal)
            entries = journal.entries()
            table.add_row(name, spec.cloud, journal.meta("state") or "?",
                          str(sum(e.kind is Kind.SERVER for e in entries)), str(len(entries)))
        except QuintupleOError as exc:
            table.add_row(name, "?", f"damaged: {exc}", "", "")
        finally:
            journal.close()
    console.print(table)


@app.command()
def show(name: str) -> None:
    """Every resource of an environment, from its journal."""
    try:
        journal = store.open_journal(name)
        spec = store.stored_spec(journal)
    except QuintupleOError as exc:
        _fail(exc)
    table = Table("kind", "name", "id", "status", "role",
                  title=f"{name} on {spec.cloud} ({journal.meta('state')})")
    order = list(Kind)
    roles = {p.name: _role(p.params) for p in plan(spec) if p.kind is Kind.SERVER}
    for entry in sorted(journal.entries(), key=lambda e: (order.index(e.kind), e.name)):
        table.add_row(entry.kind.value, entry.name, entry.cloud_id or "-", entry.status,
                      roles.get(entry.name, ""))
    console.print(table)
    served = read_served(journal)
    if served is not None:      # where the BMC host in the cloud answers
        bmc = spec.bmc
        ips = sorted(served["nodes"].values(), key=ipaddress.ip_address)
        ipmi = (f"{len(ips)} addresses ({ips[0]} … {ips[-1]}), port 623" if ips
                else f"{served['address']}, ports from {bmc.ipmi_port_base}")
        scheme = "https" if bmc.tls else "http"
        console.print(f"BMC host: IPMI on {ipmi}; Redfish on "
                      f"{scheme}://{served['address']}:{bmc.redfish_port}", highlight=False,
                      soft_wrap=True)


def _role(server: dict[str, Any]) -> str:
    if server["baremetal"]:
        return f"{server['role']} (node)"
    if server["role"] == "undercloud":
        return "undercloud"
    return f"{server['role']} (image)"      # boot: image, running, not behind the BMC


@app.command()
def delete(name: str) -> None:
    """Delete everything the environment created, also after a crash during create."""
    try:
        journal = store.open_journal(name)
        spec = store.stored_spec(journal)
        ops = _ops(spec)
        journal.set_meta("state", "deleting")
        started = time.monotonic()
        bars, report = _progress()
        with bars:
            apply.delete(ops, journal, report)
        journal.set_meta("state", "deleted")
    except QuintupleOError as exc:
        _fail(exc)
    console.print(f"[green]✓[/] {name} deleted: {ops.calls} API calls, "
                  f"{time.monotonic() - started:.1f} s")


@app.command()
def audit(name: str) -> None:
    """Resources tagged or named for the environment that its journal does not hold (leaks).
    Exit code 1 if there is any."""
    try:
        journal = store.open_journal(name)
        spec = store.stored_spec(journal)
        leaks = apply.audit(_ops(spec), journal, plan(spec))
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
