"""The services of the local cloud: how each one is started, and what it listens on.

Start order is in waves: a wave starts when everything before it answers. Within a wave the
services start together (two cores: the OpenStack APIs spend most of their start importing).
The real host's services (`vms`) start only when the cloud runs real VMs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from quintupleo.devcloud import hypervisor
from quintupleo.devcloud.layout import HOST, Layout, State


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    port: str | None = None        # key into layout.PORT_OFFSETS
    http: bool = False             # answers HTTP on its port once its app is loaded
    wave: int = 0
    cwd: Path | None = None
    socket: Path | None = None     # answers on this Unix socket once ready
    joins: str | None = None       # runs in the mount and UTS namespaces of this service
    vms: bool = False              # part of the real host


def _uwsgi(layout: Layout, state: State, name: str, module: str, port: str,
           processes: int) -> list[str]:
    return [
        str(layout.bin("uwsgi")),
        "--http-socket", f"{HOST}:{state.port(port)}",
        "--module", f"{module}:application",
        "--virtualenv", str(layout.venv),
        "--procname-prefix", f"devcloud-{name} ",
        "--master", "--die-on-term",
        # Exit when the app cannot be loaded, instead of serving 500s forever.
        "--need-app",
        "--lazy-apps",
        # Processes, not threads: a thread holding SQLite's write lock while it waits for a
        # Python lock held by a sibling waiting for SQLite deadlocks until the busy timeout.
        "--processes", str(processes), "--threads", "1", "--enable-threads",
        "--buffer-size", "65535",
        # Glance receives image data with chunked transfer encoding.
        "--http-chunked-input", "--http-raw-body", "--http-auto-chunked",
        # uWSGI's plain http-socket does not do keep-alive well: tell clients so.
        "--add-header", "Connection: close",
        "--max-requests", "0",
        "--hook-master-start", "unix_signal:15 gracefully_kill_them_all",
        "--disable-logging",
    ]


def rabbit_env(layout: Layout, state: State) -> dict[str, str]:
    etc, data = layout.etc / "rabbitmq", layout.data / "rabbitmq"
    return {
        "HOME": str(data),
        "RABBITMQ_NODENAME": "quintupleo-devcloud@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": HOST,
        "RABBITMQ_NODE_PORT": str(state.port("rabbitmq")),
        "RABBITMQ_DIST_PORT": str(state.port("rabbitmq-dist")),
        "ERL_EPMD_ADDRESS": HOST,
        "ERL_EPMD_PORT": str(state.port("epmd")),
        "RABBITMQ_MNESIA_BASE": str(data / "mnesia"),
        "RABBITMQ_LOG_BASE": str(layout.logs),
        "RABBITMQ_CONFIG_FILE": str(etc / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(etc / "enabled_plugins"),
        "RABBITMQ_CONF_ENV_FILE": str(etc / "rabbitmq-env.conf"),
        # Erlang distribution listens on every interface unless told otherwise.
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }


def all_services(layout: Layout, state: State) -> list[Service]:
    base_env = {
        "PATH": f"{layout.venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "LANG": "C.UTF-8",
        "HOME": str(layout.home),
        "PYTHONUNBUFFERED": "1",
    }
    etc = layout.etc

    def api(name: str, module: str, config_env: str, port: str, wave: int,
            processes: int = 2) -> Service:
        return Service(
            name=name,
            argv=_uwsgi(layout, state, name, module, port, processes=processes),
            env={**base_env, config_env: str(etc / name.split("-")[0])},
            port=port, http=True, wave=wave,
        )

    def nova(binary: str, conf: str, wave: int, name: str | None = None,
             vms: bool = False) -> Service:
        return Service(
            name=name or binary,
            argv=[str(layout.bin(binary)), "--config-file", str(etc / "nova" / conf)],
            env=base_env, wave=wave, vms=vms,
        )

    rabbit = rabbit_env(layout, state)
    return [
        Service("epmd", ["epmd", "-address", HOST, "-port", str(state.port("epmd"))],
                env={**base_env, **rabbit}, port="epmd", wave=0),
        Service("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"],
                env={**base_env, **rabbit}, port="rabbitmq", wave=1,
                cwd=layout.data / "rabbitmq"),
        api("keystone", "keystone.wsgi.api", "OS_KEYSTONE_CONFIG_DIR", "keystone", 1),
        api("placement", "placement.wsgi.api", "OS_PLACEMENT_CONFIG_DIR", "placement", 1),
        api("glance", "glance.wsgi.api", "OS_GLANCE_CONFIG_DIR", "glance", 1, processes=1),
        api("neutron", "neutron.wsgi.api", "OS_NEUTRON_CONFIG_DIR", "neutron", 1),
        api("nova-api", "nova.wsgi.osapi_compute", "OS_NOVA_CONFIG_DIR", "nova", 2),
        nova("nova-conductor", "nova.conf", 2),
        nova("nova-scheduler", "nova.conf", 2),
        nova("nova-compute", "nova-compute.conf", 3),
        # The real host: libvirtd (which makes the namespaces), virtlogd in them, the L2 agent,
        # Nova's serial console proxy and a second nova-compute on the libvirt driver.
        Service("libvirtd", hypervisor.launcher(layout), env=base_env, wave=1, vms=True,
                socket=layout.libvirt_socket),
        Service("virtlogd", hypervisor.virtlogd(layout), env=base_env, wave=2, vms=True,
                socket=layout.libvirt / "run" / "virtlogd-sock", joins="libvirtd"),
        Service("l2-agent", [str(layout.bin("python")), "-m",
                             "quintupleo_devcloud_plugins.l2_agent", "--db",
                             str(layout.db("neutron")), "--table", nft_table(state)],
                env=base_env, wave=1, vms=True),
        Service("nova-serialproxy", [str(layout.bin("nova-serialproxy")), "--config-file",
                                     str(etc / "nova" / "nova.conf")],
                env=base_env, port="serialproxy", wave=2, vms=True),
        nova("nova-compute", "nova-compute-qemu.conf", 3, name="nova-compute-qemu", vms=True),
    ]


def nft_table(state: State) -> str:
    """The L2 agent's nftables table: one per cloud (its port base is its own)."""
    return f"quintupleo_devcloud_{state.port_base}"
