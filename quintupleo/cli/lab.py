"""`quintupleo lab up | status | list | down`: virtual bare metal with real PXE boots, on this
machine."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.markup import escape

from quintupleo.cli import output
from quintupleo.cli.output import Format, FormatOption
from quintupleo.environments.spec import load as load_spec
from quintupleo.errors import ConfigError, QuintupleOError
from quintupleo.lab import manager
from quintupleo.lab.layout import Addresses, Role, Shape, check_shape, parse_roles
from quintupleo.lab.status import COLUMNS as STATUS_COLUMNS
from quintupleo.lab.status import LIST_COLUMNS, document, lab_status, labs

app = typer.Typer(help="A lab of QEMU nodes with a real network and a virtual BMC.",
                  no_args_is_help=True, rich_markup_mode=None)
console = output.stdout()
err = output.stderr()

Name = Annotated[str, typer.Option("--name", help="The lab's name.")]


def _fail(exc: Exception) -> typer.Exit:
    return output.fail(exc)


def roles_from_spec(path: Path, shape: Shape) -> tuple[list[Role], Addresses]:
    """An environment spec's roles (made as `shape`: a flavor means nothing here), and its
    provisioning CIDR and BMC ports for the lab."""
    spec = load_spec(path)   # validated as `env` validates it
    roles = [Role(r.name, r.count, shape, r.profile) for r in spec.roles]
    return roles, Addresses(spec.networks[0].cidr or Addresses.cidr,   # existing: ours here
                            spec.bmc.ipmi_port_base, spec.bmc.redfish_port)



@app.command("up")
def up(
    name: Name = "lab",
    nodes: Annotated[int, typer.Option(help="How many nodes (node-0 …).")] = 2,
    role: Annotated[list[str] | None, typer.Option(
        help="NAME=COUNT[,cpus=N][,memory=MiB][,disk=GiB][,boot-mode=bios|uefi]: that many "
             "nodes NAME-0 … with profile NAME in the inventory, made as it says (else as "
             "the options below); repeat for more roles (instead of --nodes).")] = None,
    cpus: Annotated[int, typer.Option(help="vCPUs per node.")] = 1,
    memory: Annotated[int, typer.Option(help="MiB of memory per node.")] = 512,
    disk: Annotated[int, typer.Option(help="GiB of disk per node (qcow2, grows on use).")] = 2,
    boot_mode: Annotated[str, typer.Option(
        help="Firmware: bios (SeaBIOS) | uefi (OVMF).")] = "bios",
    spec: Annotated[Path | None, typer.Option(
        help="An environment spec (`qo env`): the lab takes its roles (names, counts, "
             "profiles), its provisioning CIDR and its BMC ports (instead of --nodes).")] = None,
    cidr: Annotated[str | None, typer.Option(
        help="The lab network; its first address is the bridge's, for your DHCP/PXE server "
             "[default: 192.168.24.0/24].")] = None,
    ipmi_port_base: Annotated[int | None, typer.Option(
        help="Node i's IPMI on 127.0.0.1:BASE+i [default: 6230].")] = None,
    redfish_port: Annotated[int | None, typer.Option(
        help="Redfish on 127.0.0.1:PORT [default: 8000].")] = None,
    password: Annotated[str | None, typer.Option(
        envvar="QUINTUPLEO_BMC_PASSWORD",
        help="The BMCs' password (user admin) [default: a random one, kept in the lab's "
             "bmc-password file]. Prefer the variable: a flag shows in ps.")] = None,
    accel: Annotated[str, typer.Option(help="tcg | auto (KVM if a network-boot smoke test "
                                       "proves it works here, else TCG) | kvm.")] = "tcg",
    rootless: Annotated[bool | None, typer.Option(
        "--rootless/--namespace", help="Network: UDP multicast on loopback (no root needed), "
        "or a network namespace with a bridge (root) [default: by who runs it].")] = None,
    tftp_root: Annotated[str | None, typer.Option(
        help="Give the lab its own DHCP/TFTP server (QEMU's user-mode network, no way out) "
             "serving this directory; else run yours on the lab network.")] = None,
    bootfile: Annotated[str | None, typer.Option(
        help="The file that server tells PXE clients to boot.")] = None,
    inventory_driver: Annotated[str, typer.Option(
        help="How nodes.json has Ironic reach the BMC: ipmi | redfish.")] = "ipmi",
) -> None:
    """Create the nodes (powered off), their network and their BMC; write the inventory."""
    try:
        shape = check_shape(Shape(cpus, memory, disk, boot_mode), "node")
        addresses = Addresses()
        if spec is not None and role:
            raise ConfigError("--spec gives the roles: no --role with it")
        if spec is not None:
            roles, addresses = roles_from_spec(spec, shape)
        elif role:
            roles = parse_roles(role, shape)
        else:
            roles = [Role(None, nodes, shape)]
        lab = manager.up(name, roles, cidr or addresses.cidr,
                         ipmi_port_base or addresses.ipmi_port_base,
                         redfish_port or addresses.redfish_port, password, accel, rootless,
                         tftp_root, bootfile, inventory_driver)
    except QuintupleOError as exc:
        raise _fail(exc) from None
    console.print(f"[green]✓[/] lab {lab.name}: {len(lab.nodes)} nodes ({lab.accel}), "
                  "powered off")
    last = lab.ipmi_port_base + len(lab.nodes) - 1
    console.print(f"  IPMI: 127.0.0.1:{lab.ipmi_port_base}..{last}; Redfish: "
                  f"https://127.0.0.1:{lab.redfish_port}; user admin, password in "
                  f"{lab.dir / 'bmc-password'}")
    console.print(f"  inventory: {lab.dir / 'nodes.json'}; serial logs: {lab.dir / 'nodes'}/*/"
                  "serial.log")
    if lab.tftp_root:
        console.print(f"  the lab's DHCP/TFTP server serves {lab.tftp_root} "
                      f"(boot file {lab.bootfile})")
    if lab.netns:
        yours = "" if lab.tftp_root else (f"; run your DHCP/PXE server there: ip netns exec "
                                          f"{lab.netns} dnsmasq --interface=br0 …")
        console.print(f"  network: bridge br0 in namespace {lab.netns} ({lab.cidr}){yours}")
    else:
        console.print(f"  network (rootless): UDP multicast {lab.mcast} on loopback")


@app.command("status")
def status(name: Name = "lab", format: FormatOption = Format.table,
           watch: Annotated[float | None, typer.Option(
               "--watch", "-w", help="Refresh every this many seconds, in place, until "
               "Ctrl-C.")] = None) -> None:
    """Each node's power, boot override and health (as the lab's BMC shows them), its QEMU
    process and the last line of its serial console; the BMC and the network."""
    def render() -> Any:
        _, rows, head = lab_status(name)
        title = f"lab {head['lab']} · BMC {head['bmc']} · network {head['network']}"
        return rows, head, output.table([asdict(r) for r in rows], STATUS_COLUMNS, title)
    try:
        rows, head, table = render()
        if format is not Format.table:
            output.emit([], [], format, document=document(rows, head))
            return
        if watch is None:
            output.stdout().print(table)
            return
        with Live(table, console=output.stdout(), auto_refresh=False) as live:
            while True:
                time.sleep(max(watch, 0.5))
                live.update(render()[2], refresh=True)
    except QuintupleOError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        pass


@app.command("list")
def list_(format: FormatOption = Format.table) -> None:
    """Every lab on this machine: its nodes, how many are on, its BMC and network."""
    output.emit(labs(), LIST_COLUMNS, format)


@app.command("down")
def down(name: Name = "lab") -> None:
    """Stop the BMC and the nodes, remove the network and the lab's files (after a crash too)."""
    try:
        removed = manager.down(name)
    except QuintupleOError as exc:
        raise _fail(exc) from None
    for what in removed:
        console.print(f"removed {escape(what)}")
    console.print(f"[green]✓[/] lab {name} is gone" if removed else f"no lab {name} here")
