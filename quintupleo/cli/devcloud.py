"""`quintupleo devcloud`: a small real OpenStack on 127.0.0.1, for users and for our tests."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from quintupleo.cli import output
from quintupleo.cli.output import Format, FormatOption
from quintupleo.devcloud import dataplane
from quintupleo.devcloud.clouds_yaml import MEMBER_CLOUD, admin_name, clouds_yaml_path
from quintupleo.devcloud.layout import default_home
from quintupleo.devcloud.manager import Devcloud
from quintupleo.errors import QuintupleOError

app = typer.Typer(help="A local OpenStack (Keystone, Nova, Neutron, Glance, Placement) on "
                       "127.0.0.1.", no_args_is_help=True, rich_markup_mode=None)
console = output.stderr()

HomeOption = Annotated[Path | None, typer.Option(
    "--home", envvar="QUINTUPLEO_DEVCLOUD_HOME",
    help="Data dir of the devcloud [default: $QUINTUPLEO_HOME/devcloud, else "
         "$XDG_DATA_HOME/quintupleo/devcloud].")]


SERVICE_COLUMNS = ("name", "state", "pid", "port", "rss", "log")
NAMESPACE_COLUMNS = ("name", "network", "network_id", "interface", "address", "bridge")


def _devcloud(home: Path | None) -> Devcloud:
    started = time.monotonic()

    def progress(message: str) -> None:
        console.print(f"[green]✓[/] {message}  [dim]{time.monotonic() - started:5.1f} s[/]")

    return Devcloud(home or default_home(), progress)


def _fail(exc: QuintupleOError) -> None:
    raise output.fail(exc)


@app.command()
def up(home: HomeOption = None,
       port_base: Annotated[int | None, typer.Option(
           help="First of the 9 loopback ports the cloud uses [default: 19000].")] = None,
       vms: Annotated[bool | None, typer.Option(
           "--vms/--no-vms", show_default=False,
           help="Run the real host (Nova's libvirt driver on QEMU, zone qemu) beside the fake "
                "one [default: where this machine can: as root].")] = None) -> None:
    """Install (once), bootstrap (once) and start the local cloud; wait until a server can boot."""
    cloud = _devcloud(home)
    try:
        with console.status("bringing the devcloud up…"):
            state = cloud.up(port_base, vms)
    except QuintupleOError as exc:
        _fail(exc)
    for warning in cloud.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    zones = "zones nova (fake) and qemu (real VMs)" if state.vms else "zone nova (fake)"
    console.print(f"[bold green]devcloud ready[/]: {state.auth_url}, {zones}  "
                  f"(clouds: {state.cloud_name}, {admin_name(state.cloud_name)} in "
                  f"{clouds_yaml_path()})")
    console.print(f"try: OS_CLOUD={state.cloud_name} {cloud.layout.bin('openstack')} server list")


@app.command()
def down(home: HomeOption = None) -> None:
    """Stop every process the devcloud started (TERM, then KILL)."""
    cloud = _devcloud(home)
    try:
        stopped = cloud.down()
    except QuintupleOError as exc:
        _fail(exc)
    console.print(f"stopped {len(stopped)} service(s)" + (f": {', '.join(stopped)}"
                                                         if stopped else ""))


@app.command()
def netns(network: Annotated[str | None, typer.Argument(
              help="The devcloud network (name or ID) whose L2 segment the namespace joins.",
              show_default=False)] = None,
          name: Annotated[str | None, typer.Option(
              "--name", help="The namespace's name [default: devcloud-NETWORK].",
              show_default=False)] = None,
          address: Annotated[str | None, typer.Option(
              "--address", help="An address for its eth0, with prefix length (192.168.24.1/24).",
              show_default=False)] = None,
          delete: Annotated[str | None, typer.Option(
              "--delete", metavar="NS", help="Remove the namespace NS instead.",
              show_default=False)] = None,
          home: HomeOption = None) -> None:
    """Put a network namespace on a devcloud network's L2 (a veth into its segment), for your
    own DHCP/PXE server, Ironic's HTTP server or tcpdump: `ip netns exec NS …`."""
    cloud = _devcloud(home)
    try:
        if delete:
            dataplane.delete(cloud.layout, delete)
            console.print(f"removed namespace {delete}")
            return
        if network is None:
            raise QuintupleOError("name a NETWORK, or --delete NS")
        found = cloud.find_network(network)
        made = dataplane.create(cloud.layout, found.id, found.name or found.id, found.mtu, name,
                                address)
    except QuintupleOError as exc:
        _fail(exc)
    console.print(f"namespace [bold]{made.name}[/]: {made.interface}"
                  f"{' ' + made.address if made.address else ''} on network {made.network} "
                  f"(bridge {made.bridge})", highlight=False)
    typer.echo(made.name)


@app.command()
def reset(home: HomeOption = None) -> None:
    """Return to the clean bootstrapped state (restores the golden copy) and start."""
    cloud = _devcloud(home)
    try:
        with console.status("resetting the devcloud…"):
            cloud.reset()
    except QuintupleOError as exc:
        _fail(exc)
    console.print("[bold green]devcloud reset and ready[/]")


@app.command()
def smoke(cloud: Annotated[str, typer.Option(envvar="OS_CLOUD", help="Cloud from clouds.yaml.")]
          = MEMBER_CLOUD) -> None:
    """Boot a server on a pre-created port, stop it, start it, delete it; print the timings."""
    import openstack
    from openstack.exceptions import SDKException

    from quintupleo.devcloud import smoke as smoke_run

    try:
        with console.status(f"smoke run on {cloud}…"):
            timings = smoke_run.run(openstack.connect(cloud=cloud))
    except (QuintupleOError, SDKException) as exc:
        _fail(QuintupleOError(f"smoke run on {cloud} failed: {exc}"))
    output.stdout().print(output.table([{"step": step, "seconds": f"{seconds:.2f}"}
                                        for step, seconds in timings], ("step", "seconds"),
                                       f"smoke run on {cloud}: passed"))


@app.command()
def status(home: HomeOption = None, format: FormatOption = Format.table) -> None:
    """Each service's state, PID, port and resident memory; the namespaces of `devcloud netns`."""
    cloud = _devcloud(home)
    rows = [asdict(row) for row in cloud.status()]
    spaces = [asdict(space) for space in dataplane.namespaces(cloud.layout)]
    if format is not Format.table:
        output.emit([], [], format, document={"services": rows, "namespaces": spaces})
        return
    shown = [{**row, "state": f"[{'green' if row['state'] == 'running' else 'red'}]"
                              f"{row['state']}[/]",
              "rss": f"{row['rss'] / 2**20:.0f} MiB" if row["rss"] else None} for row in rows]
    out = output.stdout()
    out.print(output.table(shown, SERVICE_COLUMNS, markup=True))
    out.print(f"total RSS: {sum(row['rss'] or 0 for row in rows) / 2**20:.0f} MiB")
    if spaces:
        out.print(output.table(spaces, NAMESPACE_COLUMNS))
