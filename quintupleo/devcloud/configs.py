"""Configuration files of the local cloud, rendered from the layout and the state.

Each function returns {relative path under etc/: file text}. Settings that are not the services'
defaults say why in a comment; the measured pitfalls they avoid are in the design notes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from quintupleo.devcloud.layout import HOST, Layout, State
from quintupleo.devcloud.plugins.names import DEFAULT_ZONE, FAKE_HOST, REAL_HOST

Ini = Mapping[str, Mapping[str, object]]

# oslo.log's defaults plus nova.service at DEBUG: its "Join ServiceGroup" line tells us the
# conductor consumes RPC, so nova-compute's first call is not lost (a 10 s retry otherwise).
NOVA_LOG_LEVELS = ",".join([
    "amqp=WARN", "amqplib=WARN", "boto=WARN", "qpid=WARN", "sqlalchemy=WARN", "suds=INFO",
    "oslo.messaging=INFO", "oslo_messaging=INFO", "iso8601=WARN",
    "requests.packages.urllib3.connectionpool=WARN", "urllib3.connectionpool=WARN",
    "websocket=WARN", "requests.packages.urllib3.util.retry=WARN", "urllib3.util.retry=WARN",
    "keystonemiddleware=WARN", "routes.middleware=WARN", "stevedore=WARN", "taskflow=WARN",
    "keystoneauth=WARN", "oslo.cache=INFO", "oslo_policy=INFO", "dogpile.core.dogpile=INFO",
    "nova.service=DEBUG",
])


def render_ini(sections: Ini) -> str:
    lines: list[str] = []
    for name, options in sections.items():
        lines.append(f"[{name}]")
        for key, value in options.items():
            if isinstance(value, bool):
                value = str(value).lower()
            lines.append(f"{key} = {value}")
        lines.append("")
    return "\n".join(lines)


def _service_auth(state: State, user: str) -> dict[str, object]:
    """Credentials a service uses to talk to the others (keystone_authtoken, [placement], ...)."""
    return {
        "auth_url": state.auth_url,
        "auth_type": "password",
        "username": user,
        "password": state.service_password,
        "project_name": "service",
        "user_domain_name": "Default",
        "project_domain_name": "Default",
        "region_name": "RegionOne",
    }


def _authtoken(state: State, user: str) -> dict[str, object]:
    return {"www_authenticate_uri": state.auth_url, **_service_auth(state, user)}


def _common(layout: Layout, service: str) -> dict[str, dict[str, object]]:
    return {
        "oslo_concurrency": {"lock_path": layout.data / service / "locks"},
        "oslo_policy": {"enforce_new_defaults": True, "enforce_scope": False},
    }


def keystone(layout: Layout, state: State) -> dict[str, str]:
    conf: dict[str, dict[str, object]] = {
        "DEFAULT": {"use_stderr": True},
        "database": {"connection": layout.db_url("keystone")},
        "token": {"provider": "fernet", "expiration": 86400},
        "fernet_tokens": {"key_repository": layout.data / "keystone" / "fernet-keys"},
        "fernet_receipts": {"key_repository": layout.data / "keystone" / "fernet-keys"},
        "credential": {"key_repository": layout.data / "keystone" / "credential-keys"},
        **_common(layout, "keystone"),
    }
    return {"keystone/keystone.conf": render_ini(conf)}


def placement(layout: Layout, state: State) -> dict[str, str]:
    conf: dict[str, dict[str, object]] = {
        "DEFAULT": {"use_stderr": True},
        "placement_database": {"connection": layout.db_url("placement")},
        "api": {"auth_strategy": "keystone"},
        "keystone_authtoken": _authtoken(state, "placement"),
        **_common(layout, "placement"),
    }
    return {"placement/placement.conf": render_ini(conf)}


def glance(layout: Layout, state: State) -> dict[str, str]:
    conf: dict[str, dict[str, object]] = {
        "DEFAULT": {"use_stderr": True, "enabled_backends": "fs:file"},
        "database": {"connection": layout.db_url("glance")},
        "glance_store": {"default_backend": "fs"},
        "fs": {"filesystem_store_datadir": layout.data / "glance" / "images"},
        "os_glance_staging_store": {"filesystem_store_datadir": layout.data / "glance" / "staging"},
        "os_glance_tasks_store": {"filesystem_store_datadir": layout.data / "glance" / "tasks"},
        "paste_deploy": {"flavor": "keystone",
                         "config_file": layout.etc / "glance" / "glance-api-paste.ini"},
        "keystone_authtoken": _authtoken(state, "glance"),
        "oslo_messaging_notifications": {"driver": "noop"},
        **_common(layout, "glance"),
    }
    return {"glance/glance-api.conf": render_ini(conf)}


def neutron(layout: Layout, state: State) -> dict[str, str]:
    conf: dict[str, dict[str, object]] = {
        "DEFAULT": {
            "use_stderr": True,
            "core_plugin": "ml2",
            # segments: the ip_allocation extension, so Nova boots ports without fixed IPs
            "service_plugins": "router,segments",
            "auth_strategy": "keystone",
            "transport_url": state.transport_url,
            "state_path": layout.data / "neutron",
            # No agents and no Nova callback: ports go ACTIVE when our driver binds them.
            "notify_nova_on_port_status_changes": False,
            "notify_nova_on_port_data_changes": False,
        },
        "database": {"connection": layout.db_url("neutron")},
        "keystone_authtoken": _authtoken(state, "neutron"),
        "oslo_messaging_notifications": {"driver": "noop"},
        "quotas": {"quota_network": 100, "quota_subnet": 100, "quota_port": 1000},
        **_common(layout, "neutron"),
    }
    ml2 = {
        "ml2": {
            "type_drivers": "flat,vlan,vxlan",
            "tenant_network_types": "vxlan",
            "mechanism_drivers": "quintupleo_agentless",
            "extension_drivers": "port_security,tag_ports_during_bulk_creation",
        },
        "ml2_type_flat": {"flat_networks": "*"},
        "ml2_type_vlan": {"network_vlan_ranges": "physnet1:100:199"},
        "ml2_type_vxlan": {"vni_ranges": "1:10000"},
    }
    return {
        "neutron/neutron.conf": render_ini(conf),
        "neutron/plugins/ml2/ml2_conf.ini": render_ini(ml2),
    }


def _nova_common(layout: Layout, state: State) -> dict[str, dict[str, object]]:
    return {
        "DEFAULT": {
            "use_stderr": True,
            "default_log_levels": NOVA_LOG_LEVELS,
            "host": FAKE_HOST,
            "my_ip": HOST,
            "transport_url": state.transport_url,
            "state_path": layout.data / "nova",
            "instances_path": layout.data / "nova" / "instances",
            # Nova's fake hypervisor, writing down what it is asked to boot (virt-events.jsonl).
            "compute_driver": "quintupleo_recording.RecordingFakeDriver",
            # The fake driver plugs nothing: do not wait for Neutron's vif-plugged event.
            "vif_plugging_is_fatal": False,
            "vif_plugging_timeout": 0,
            # Otherwise periodic tasks (and so host discovery) start up to 60 s late.
            "periodic_fuzzy_delay": 0,
            "allow_resize_to_same_host": True,
            # A dev cloud has nothing to drain: stop within seconds, not a minute.
            "graceful_shutdown_timeout": 3,
            # On two busy cores (TCG guests, SQLite writers) a compute's 10 s heartbeat can lag
            # past the default 60 s, and the scheduler then finds no host ("No valid host").
            "service_down_time": 180,
            # Servers that name no zone go to the fake host (an aggregate puts it in this zone):
            # real VMs are for those that ask for zone `qemu`.
            "default_schedule_zone": DEFAULT_ZONE,
        },
        # One worker each: the default (one per core) doubles their memory for nothing here.
        "conductor": {"workers": 1},
        "api": {"auth_strategy": "keystone"},
        "wsgi": {"api_paste_config": layout.etc / "nova" / "api-paste.ini"},
        "keystone_authtoken": _authtoken(state, "nova"),
        "placement": _service_auth(state, "placement"),
        "neutron": _service_auth(state, "neutron"),
        "glance": {"region_name": "RegionOne"},
        "scheduler": {"discover_hosts_in_cells_interval": 2, "workers": 1},
        "quota": {"instances": 250, "cores": 500, "ram": 819200},   # 200 nodes (bench/env.py)
        "vnc": {"enabled": False},
        "serial_console": {
            "enabled": True,
            "base_url": f"ws://{HOST}:{state.port('serialproxy')}/",
            "serialproxy_host": HOST,
            "serialproxy_port": state.port("serialproxy"),
            "proxyclient_address": HOST,
            "port_range": state.serial_port_range,
        },
        "oslo_messaging_notifications": {"driver": "noop"},
        **_common(layout, "nova"),
    }


def nova(layout: Layout, state: State) -> dict[str, str]:
    conf = _nova_common(layout, state)
    conf["database"] = {"connection": layout.db_url("nova_cell1")}
    conf["api_database"] = {"connection": layout.db_url("nova_api")}
    # nova-compute must not see the databases: it talks to them through the conductor.
    compute = _nova_common(layout, state)
    # The fake hypervisor has no serial port: its servers answer as on a cloud without serial
    # consoles (ConsoleTypeUnavailable), where the real host's have one.
    compute["serial_console"]["enabled"] = False
    return {
        "nova/nova.conf": render_ini(conf),
        "nova/nova-compute.conf": render_ini(compute),
    }


def nova_qemu(layout: Layout, state: State) -> dict[str, str]:
    """The real host: Nova's libvirt driver on QEMU (TCG), its own state and instances."""
    conf = _nova_common(layout, state)
    conf["DEFAULT"].update({
        "host": REAL_HOST,
        # Nova's libvirt driver with one fix for Debian 12's libvirt (plugins/libvirt_compat.py)
        "compute_driver": "quintupleo_libvirt.LibvirtDriver",
        "state_path": layout.data / "nova-qemu",
        "instances_path": layout.data / "nova-qemu" / "instances",
        # Firmware and iPXE ignore ACPI power-off: a stop (and a rescue) would wait 60 s.
        "shutdown_timeout": 0,
        # Nothing sends network-vif-plugged: the devcloud's L2 agent wires taps, not Neutron.
        "vif_plugging_is_fatal": False,
        "vif_plugging_timeout": 0,
        # An instance left running by a `down` is started again on `up` as it was.
        "resume_guests_state_on_host_boot": False,
    })
    conf["libvirt"] = {
        # KVM here is broken (no vmx/svm; PVM): TCG, Nova's default CPU model.
        "virt_type": "qemu",
        "cpu_mode": "none",
        "connection_uri": f"qemu+unix:///system?socket={layout.libvirt_socket}",
        # The original design's unsafe caching: a dev cloud's disks are scratch.
        "disk_cachemodes": "file=unsafe,block=unsafe,network=unsafe",
    }
    # No sudo here; nova-compute runs as root and starts its privileged helper directly.
    conf["nova_sys_admin"] = {"helper_command": f"{layout.bin('privsep-helper')} --config-file "
                                                f"{layout.etc / 'nova' / 'nova-compute-qemu.conf'}"}
    conf["oslo_concurrency"] = {"lock_path": layout.data / "nova-qemu" / "locks"}
    return {"nova/nova-compute-qemu.conf": render_ini(conf)}


def libvirt(layout: Layout, state: State) -> dict[str, str]:
    """libvirtd, virtlogd and the QEMU driver, run by hand (no systemd, no polkit, no cgroups)."""
    return {
        "libvirt/libvirtd.conf": "\n".join([
            # Only root reaches the socket (0700 on a dir in the data dir): no polkit needed.
            'unix_sock_rw_perms = "0700"', 'auth_unix_rw = "none"', 'auth_unix_ro = "none"',
            'log_outputs = "3:stderr"', ""]),
        "libvirt/virtlogd.conf": 'log_outputs = "3:stderr"\n',
        "libvirt/qemu.conf": "\n".join([
            # QEMU as root, no relabelling, no cgroups, no private /dev: a process of ours.
            'user = "root"', 'group = "root"', "dynamic_ownership = 0", "remember_owner = 0",
            'security_driver = "none"', "cgroup_controllers = [ ]", "namespaces = [ ]",
            # Serial output through virtlogd, so a console log survives reboots.
            'stdio_handler = "logd"', ""]),
    }


def rabbitmq(layout: Layout, state: State) -> dict[str, str]:
    conf = "\n".join([
        f"listeners.tcp.1 = {HOST}:{state.port('rabbitmq')}",
        "default_user = quintupleo",
        f"default_pass = {state.rabbit_password}",
        "log.console = true",
        "log.file = false",
        "",
    ])
    return {
        "rabbitmq/rabbitmq.conf": conf,
        "rabbitmq/enabled_plugins": "[].\n",
        # An empty env file, so that /etc/rabbitmq/rabbitmq-env.conf is not read.
        "rabbitmq/rabbitmq-env.conf": "",
    }


RENDERERS = (keystone, placement, glance, neutron, nova, nova_qemu, libvirt, rabbitmq)
PASTE_FILES = {
    "glance/glance-api-paste.ini": "glance/glance-api-paste.ini",
    "neutron/api-paste.ini": "neutron/api-paste.ini",
    "nova/api-paste.ini": "nova/api-paste.ini",
}


FINGERPRINT = ".rendered"   # hash of what write_all last rendered, in the etc dir


def write_all(layout: Layout, state: State, only_if_changed: bool = False) -> bool:
    """Render every configuration file; the paste files come from the venv's own etc/.

    With `only_if_changed`, write only when this QuintupleO renders something other than what
    was last written (an upgrade); local edits to the files survive otherwise. True if written.
    """
    files: dict[str, str] = {}
    for render in RENDERERS:
        files.update(render(layout, state))
    for target, source in PASTE_FILES.items():
        files[target] = (layout.venv / "etc" / source).read_text()
    digest = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()
    marker = layout.etc / FINGERPRINT
    if only_if_changed and marker.exists() and marker.read_text() == digest:
        return False
    for rel, text in files.items():
        path = layout.etc / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o600)
    marker.write_text(digest)
    return True
