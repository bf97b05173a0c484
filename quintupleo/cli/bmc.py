"""`quintupleo bmc`: the virtual BMC service (IPMI 2.0 and Redfish), over the nodes of a lab,
an environment, Nova servers or fakes."""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from quintupleo.backends.base import Backend
from quintupleo.backends.fake import FakeBackend
from quintupleo.bmc.logs import JsonLines
from quintupleo.bmc.service import BmcService
from quintupleo.bmc.settings import BmcSettings
from quintupleo.cli.output import fail
from quintupleo.environments.store import bmc_settings
from quintupleo.errors import QuintupleOError

app = typer.Typer(help="Virtual BMCs: IPMI 2.0 (lanplus) and Redfish for many nodes from one "
                       "process.",
                  no_args_is_help=True, rich_markup_mode=None)
console = Console(stderr=True)


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


def backend_for(settings: BmcSettings) -> Backend:
    """The nodes the settings name: a lab's QEMU machines, Nova servers, or fakes."""
    media_max_bytes = settings.media_max_mb * 1024 * 1024
    if settings.backend == "fake":
        agents = None
        if settings.fake_agent:
            from quintupleo.backends.agent import FakeAgents
            agents = FakeAgents(settings.fake_agent, settings.state_dir,
                                settings.fake_agent_address,
                                settings.fake_agent_port_base, settings.fake_agent_delay,
                                settings.fake_agent_heartbeat)
        return FakeBackend(settings.fake_nodes, settings.fake_delay,
                           staged=settings.fake_staged, agents=agents)
    if settings.backend == "qemu":
        from quintupleo.backends.qemu import QemuBackend
        from quintupleo.lab.layout import Lab
        from quintupleo.lab.machines import machine_specs
        return QemuBackend(machine_specs(Lab.load(str(settings.lab))), media_max_bytes)
    from quintupleo.backends.openstack.driver import OpenStackBackend  # slow to import
    return OpenStackBackend(settings.cloud, settings.prefix, settings.servers,
                            strategy=settings.boot_strategy, images=settings.pxe_images,
                            media_max_bytes=media_max_bytes)


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="YAML settings file (flags override it).")] = None,
    environment: Annotated[str | None, typer.Option(
        help="Serve this environment's nodes, with its BMC settings and credentials.")] = None,
    backend: Annotated[str | None, typer.Option(
        help="Where nodes come from: fake | openstack | qemu [default: fake].")] = None,
    lab: Annotated[str | None, typer.Option(
        help="The lab whose QEMU nodes to serve (qemu backend).")] = None,
    fake_nodes: Annotated[int | None, typer.Option(
        help="Number of in-memory nodes (fake backend) [default: 2].")] = None,
    fake_delay: Annotated[float | None, typer.Option(
        help="Seconds a fake power change takes [default: 0].")] = None,
    fake_agent: Annotated[str | None, typer.Option(
        metavar="URL", help="Fake nodes that network-boot run a fake Ironic Python Agent when "
                            "Ironic's iPXE config for them (under URL, its [deploy]http_url) "
                            "boots one; each agent on port 9999 + the node's index.")] = None,
    fake_agent_delay: Annotated[float | None, typer.Option(
        help="Seconds a fake agent's step or image write takes [default: 1].")] = None,
    cloud: Annotated[str | None, typer.Option(
        envvar="OS_CLOUD", help="clouds.yaml entry (openstack backend).")] = None,
    prefix: Annotated[str | None, typer.Option(
        help="Serve the Nova servers whose name starts with this.")] = None,
    server: Annotated[list[str] | None, typer.Option(
        help="Serve this Nova server (name or ID); repeat for more.")] = None,
    boot_strategy: Annotated[str | None, typer.Option(
        help="How network and CD boots are done on Nova: none | rescue | rebuild "
             "[default: none].")] = None,
    ipmi_address: Annotated[str | None, typer.Option(
        help="Address the IPMI endpoints listen on [default: 127.0.0.1].")] = None,
    ipmi_port_base: Annotated[int | None, typer.Option(
        help="Node i listens on UDP port BASE+i [default: 6230].")] = None,
    username: Annotated[str | None, typer.Option(
        help="BMC user name of every node [default: admin].")] = None,
    password: Annotated[str | None, typer.Option(
        envvar="QUINTUPLEO_BMC_PASSWORD",
        help="BMC password of every node [default: password]. Prefer the variable: a flag "
             "shows in ps.")] = None,
    refresh_interval: Annotated[float | None, typer.Option(
        help="Seconds between batch reads of every node's power [default: 10].")] = None,
    redfish: Annotated[bool | None, typer.Option(
        "--redfish/--no-redfish", help="Serve Redfish too [default: yes].")] = None,
    redfish_address: Annotated[str | None, typer.Option(
        help="Address of the Redfish service [default: 127.0.0.1].")] = None,
    redfish_port: Annotated[int | None, typer.Option(
        help="TCP port of the Redfish service [default: 8000].")] = None,
    tls: Annotated[bool | None, typer.Option(
        "--tls/--no-tls", help="HTTPS for Redfish (self-signed unless --tls-cert/--tls-key) "
                               "[default: yes].")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate for Redfish.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key for Redfish.")] = None,
    state_dir: Annotated[Path | None, typer.Option(
        help="Where boot overrides persist [default: $XDG_STATE_HOME/quintupleo/bmc].")] = None,
    inventory_output: Annotated[Path | None, typer.Option(
        help="Write Ironic's `baremetal create` JSON for the served nodes here.")] = None,
    inventory_driver: Annotated[str | None, typer.Option(
        help="Ironic driver in that file: ipmi | redfish [default: ipmi].")] = None,
    log_level: Annotated[LogLevel, typer.Option(help="What to log.")] = LogLevel.info,
    log_file: Annotated[Path | None, typer.Option(
        help="Log to this file (reopened when moved, for logrotate) [default: stderr].")] = None,
    log_format: Annotated[LogFormat, typer.Option(
        help="text: one line per event; json: one JSON object per line.")] = LogFormat.text,
) -> None:
    """Serve virtual BMCs until interrupted (SIGTERM / Ctrl-C)."""
    _log_to(log_level, log_file, log_format)
    try:
        settings = BmcSettings.load(
            config, bmc_settings, environment=environment, backend=backend, lab=lab,
            fake_nodes=fake_nodes, fake_delay=fake_delay, fake_agent=fake_agent,
            fake_agent_delay=fake_agent_delay, cloud=cloud, boot_strategy=boot_strategy,
            prefix=prefix, servers=server, ipmi_address=ipmi_address,
            ipmi_port_base=ipmi_port_base, username=username, password=password,
            refresh_interval=refresh_interval, redfish=redfish, redfish_address=redfish_address,
            redfish_port=redfish_port, tls=tls, tls_cert=tls_cert, tls_key=tls_key,
            state_dir=state_dir, inventory_output=inventory_output,
            inventory_driver=inventory_driver)
    except QuintupleOError as exc:     # the settings themselves: a usage error
        raise fail(exc, 2) from None
    try:
        asyncio.run(BmcService(settings, backend_for(settings)).run())
    except QuintupleOError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        pass


def _log_to(level: LogLevel, path: Path | None, style: LogFormat) -> None:
    handler: logging.Handler
    if path is not None:
        handler = logging.handlers.WatchedFileHandler(path.expanduser())
    elif console.is_terminal and style is LogFormat.text:
        handler = RichHandler(console=console, show_path=False)
    else:
        handler = logging.StreamHandler()
    if style is LogFormat.json:
        handler.setFormatter(JsonLines())
    elif not isinstance(handler, RichHandler):   # one greppable line per event
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: "
                                               "%(message)s"))
    logging.basicConfig(level=level.value.upper(), handlers=[handler], force=True)
    logging.getLogger("openstack").setLevel(logging.WARNING)
    logging.getLogger("keystoneauth").setLevel(logging.WARNING)
    # what libraries log on the root logger itself (virt-firmware: each UEFI variable it sets)
    # is heard from at WARNING
    logging.getLogger().addFilter(lambda record: record.levelno >= logging.WARNING)
