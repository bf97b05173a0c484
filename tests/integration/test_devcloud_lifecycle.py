"""`quintupleo devcloud` as a user drives it: the real CLI, real processes, real faults."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import openstack
import psutil
import pytest
from wire import IP, NFT, links

from quintupleo.devcloud import dataplane
from quintupleo.devcloud.layout import State
from quintupleo.devcloud.manager import Devcloud
from quintupleo.devcloud.services import nft_table
from quintupleo.devcloud.smoke import settle
from quintupleo.errors import DevcloudError

pytestmark = pytest.mark.devcloud


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quintupleo", "devcloud", *args],
                          capture_output=True, text=True, env=env, check=False, timeout=600)


def our_processes(cloud: Devcloud) -> list[psutil.Process]:
    """Every process whose command line or environment points into the devcloud's home."""
    home = str(cloud.layout.home)
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            text = " ".join(proc.info["cmdline"] or []) + " ".join(
                (proc.info["environ"] or {}).values())
        except psutil.Error:
            continue
        if home in text and proc.pid != os.getpid():
            found.append(proc)
    return found


def assert_all_stopped(cloud: Devcloud) -> None:
    assert {row.state for row in cloud.status()} == {"stopped"}
    assert our_processes(cloud) == []
    # Nor anything of the real host's data plane: bridges, taps, namespaces, its nft table.
    assert [name for name in links() if name.startswith(("qobr", "qov"))] == []
    assert dataplane.namespaces(cloud.layout) == []
    assert "devcloud" not in subprocess.run([IP, "netns", "list"], capture_output=True,
                                            text=True).stdout
    tables = subprocess.run([NFT, "list", "tables"], capture_output=True, text=True).stdout
    assert nft_table(State.load(cloud.layout)) not in tables
    assert not Path("/run/libvirt").exists() or any(Path("/run/libvirt").iterdir())


@pytest.fixture
def running_vm(devcloud):
    """Where the real host runs: a VM on a network with a `devcloud netns`, made through the
    CLI and the API as a user would; returns the server, or None without the real host."""
    if not State.load(devcloud.layout).vms:
        return None
    conn = openstack.connect(cloud="devcloud")
    net = conn.network.create_network(name="qo-test-lifecycle")
    conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="198.51.100.0/24",
                               enable_dhcp=False, gateway_ip=None)
    port = conn.network.create_port(network_id=net.id, port_security_enabled=False)
    result = cli("netns", net.id, "--address", "198.51.100.1/24")
    assert result.returncode == 0, result.stderr
    server = conn.compute.create_server(
        name="qo-test-lifecycle", image_id=conn.image.find_image("quintupleo-tiny").id,
        flavor_id=conn.compute.find_flavor("qo.tiny").id, networks=[{"port": port.id}],
        availability_zone="qemu")
    server = conn.compute.wait_for_server(server, wait=120, interval=0.3)
    assert [q for q in our_processes(devcloud) if "qemu-system" in q.name()]
    yield server
    devcloud.up()   # the test may have brought it down
    conn = openstack.connect(cloud="devcloud")
    conn.compute.delete_server(server, ignore_missing=True)
    conn.compute.wait_for_delete(server, wait=120)
    for leftover in conn.network.ports(network_id=net.id):
        conn.network.delete_port(leftover, ignore_missing=True)
    conn.network.delete_network(net, ignore_missing=True)


def test_status_json_lists_every_service_running(devcloud):
    result = cli("status", "--format", "json", "--home", str(devcloud.layout.home))
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["services"]}
    assert {"rabbitmq", "keystone", "placement", "glance", "neutron", "nova-api",
            "nova-conductor", "nova-scheduler", "nova-compute"} <= set(rows)
    if State.load(devcloud.layout).vms:
        assert {"libvirtd", "virtlogd", "l2-agent", "nova-serialproxy",
                "nova-compute-qemu"} <= set(rows)
    for row in rows.values():
        assert row["state"] == "running"
        assert psutil.pid_exists(row["pid"])
        assert row["rss"] > 0
    assert rows["keystone"]["port"] == State.load(devcloud.layout).port("keystone")


def test_nothing_listens_beyond_loopback(devcloud):
    pids = {p.pid for p in our_processes(devcloud)}
    listening = [c for c in psutil.net_connections(kind="inet")
                 if c.pid in pids and c.status == psutil.CONN_LISTEN]
    assert listening, "the services listen somewhere"
    assert {c.laddr.ip for c in listening} <= {"127.0.0.1", "::1"}


def test_openstack_cli_works_with_os_cloud(devcloud):
    env = {**os.environ, "OS_CLOUD": "devcloud"}
    result = subprocess.run([str(devcloud.layout.bin("openstack")), "server", "list", "-f",
                             "json"], capture_output=True, text=True, env=env, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list)


def test_up_again_keeps_the_running_services(devcloud):
    before = {row.name: row.pid for row in devcloud.status()}
    result = cli("up", "--home", str(devcloud.layout.home))
    assert result.returncode == 0, result.stderr
    assert "devcloud ready" in result.stderr
    assert {row.name: row.pid for row in devcloud.status()} == before


def test_down_leaves_no_process_of_ours(devcloud, running_vm):
    assert our_processes(devcloud)
    result = cli("down", "--home", str(devcloud.layout.home))
    assert result.returncode == 0, result.stderr
    assert_all_stopped(devcloud)


@pytest.fixture
def stopped_devcloud(devcloud_home) -> Devcloud:
    """The local cloud, down: the start-up faults below follow one another without the 30 s
    start each would cost (the next test's `devcloud` brings it up again)."""
    cloud = Devcloud(devcloud_home)
    cloud.down()
    return cloud


def test_reset_returns_to_the_bootstrapped_state(devcloud):
    conn = openstack.connect(cloud="devcloud")
    net = conn.network.create_network(name="qo-test-reset")
    devcloud.reset()
    conn = openstack.connect(cloud="devcloud")
    assert conn.network.find_network(net.id) is None
    assert conn.compute.find_flavor("qo.tiny") is not None
    assert conn.image.find_image("quintupleo-tiny") is not None


def test_port_in_use_names_the_service_and_starts_nothing(stopped_devcloud):
    port = State.load(stopped_devcloud.layout).port("glance")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = cli("up", "--home", str(stopped_devcloud.layout.home))
        assert result.returncode == 1
        assert "glance" in result.stderr and str(port) in result.stderr
        assert "already in use" in result.stderr
        assert str(stopped_devcloud.layout.log("glance")) in result.stderr.replace("\n", "")
        assert "Traceback" not in result.stderr
        assert_all_stopped(stopped_devcloud)


def test_service_that_dies_on_start_is_named_and_the_rest_stopped(stopped_devcloud):
    conf = stopped_devcloud.layout.etc / "placement" / "placement.conf"
    good = conf.read_text()
    conf.write_text(good.replace("auth_strategy = keystone", "auth_strategy = no-such-strategy"))
    try:
        with pytest.raises(DevcloudError) as failure:
            stopped_devcloud.up()
        assert failure.value.service == "placement"
        assert failure.value.log == stopped_devcloud.layout.log("placement")
        assert "exited while starting" in str(failure.value)
        assert "auth_strategy" in str(failure.value)  # the cause, from the log's last lines
        assert_all_stopped(stopped_devcloud)
    finally:
        conf.write_text(good)


def test_corrupt_data_dir_is_named_with_a_way_out(stopped_devcloud):
    db = stopped_devcloud.layout.db("keystone")
    saved = db.with_suffix(".saved")
    shutil.copy(db, saved)
    try:
        db.write_bytes(b"this is not a database" * 100)
        with pytest.raises(DevcloudError) as failure:
            stopped_devcloud.up()
        assert "corrupt" in str(failure.value) and str(db) in str(failure.value)
        assert "devcloud reset" in str(failure.value)
        assert_all_stopped(stopped_devcloud)
    finally:
        saved.replace(db)


def test_missing_program_is_named_with_its_package(stopped_devcloud, monkeypatch):
    monkeypatch.setenv("PATH", str(stopped_devcloud.layout.venv / "bin"))  # no /usr/bin: no epmd
    with pytest.raises(DevcloudError) as failure:
        stopped_devcloud.up()
    assert failure.value.service == "epmd"
    assert "rabbitmq-server" in str(failure.value)
    assert_all_stopped(stopped_devcloud)


def test_errors_and_logs_show_no_password(stopped_devcloud):
    state = State.load(stopped_devcloud.layout)
    secrets = [state.admin_password, state.member_password, state.service_password]
    logs = "".join(p.read_text(errors="replace")
                   for p in stopped_devcloud.layout.logs.glob("*.log"))
    for secret in secrets:
        assert secret not in logs
    assert state.admin_password not in repr(state)


def test_up_recovers_after_every_process_was_killed(devcloud, running_vm):
    for proc in our_processes(devcloud):   # a crash: no TERM, no clean shutdown, stale PID files
        with contextlib.suppress(psutil.Error):
            proc.kill()                    # the services, libvirtd, virtlogd and QEMU
    deadline = time.monotonic() + 10
    while {row.state for row in devcloud.status()} != {"stopped"}:
        assert time.monotonic() < deadline, "SIGKILL did not end every service"
        time.sleep(0.1)
    result = cli("down", "--home", str(devcloud.layout.home))
    assert result.returncode == 0, result.stderr
    assert_all_stopped(devcloud)
    devcloud.up()
    assert {row.state for row in devcloud.status()} == {"running"}
    conn = openstack.connect(cloud="devcloud")
    assert conn.compute.find_flavor("qo.tiny") is not None
    if running_vm is not None:   # the VM lost its power with the host; it boots again
        conn.compute.reboot_server(running_vm, "HARD")
        settle(conn, running_vm.id, "ACTIVE", timeout=120)
        assert [q for q in our_processes(devcloud) if "qemu-system" in q.name()]


def test_smoke_run_passes_and_leaves_nothing(devcloud):
    result = subprocess.run([sys.executable, "-m", "quintupleo", "devcloud", "smoke"],
                            capture_output=True, text=True, timeout=300, check=False,
                            env={**os.environ, "OS_CLOUD": "devcloud"})
    assert result.returncode == 0, result.stderr
    assert "passed" in result.stdout and "boot on a pre-created port" in result.stdout
    conn = openstack.connect(cloud="devcloud")
    assert [n.name for n in conn.network.networks() if n.name.startswith("qo-smoke-")] == []
    assert [s.name for s in conn.compute.servers() if s.name.startswith("qo-smoke-")] == []
