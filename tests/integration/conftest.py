from __future__ import annotations

import os
import subprocess
import sys

import openstack
import pytest


@pytest.fixture(scope="session")
def cloud_config_schema(tmp_path_factory) -> dict:
    """cloud-init's own cloud-config JSON schema, from Debian's cloud-init package (downloaded
    from the Debian mirror, unpacked, never installed)."""
    import json
    work = tmp_path_factory.mktemp("cloud-init")
    download = ["apt-get", "download", "-q", "cloud-init"]
    if subprocess.run(download, cwd=work, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(download, cwd=work, check=True, capture_output=True)
    package = next(work.glob("cloud-init_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(package), str(work / "root")], check=True)
    schema = next((work / "root").glob("usr/lib/python3/dist-packages/cloudinit/config/"
                                       "schemas/schema-cloud-config-v1.json"))
    return json.loads(schema.read_text())


@pytest.fixture
def ipxe_images(devcloud, tmp_path_factory):
    """`quintupleo image upload` run twice: the second run reuses what the first uploaded
    (per test: a devcloud reset by another test forgets Glance's images)."""
    environ = dict(os.environ, QUINTUPLEO_HOME=str(tmp_path_factory.mktemp("images")),
                   COLUMNS="200")
    runs = [subprocess.run([sys.executable, "-m", "quintupleo", "image", "upload", "--cloud",
                            "devcloud"], capture_output=True, text=True, env=environ,
                           timeout=300, check=True).stdout for _ in range(2)]
    assert "uploaded" in runs[0] or "reused" in runs[0]
    assert runs[1].count("reused") == 2, runs[1]
    conn = openstack.connect(cloud="devcloud")
    images = {}
    for firmware in ("bios", "uefi"):
        found = [i for i in conn.image.images(name=f"quintupleo-ipxe-{firmware}")
                 if i.status == "active"]
        newest = max(found, key=lambda i: i.created_at)
        assert newest.properties["hw_firmware_type"] == firmware
        assert newest.properties["hw_rescue_device"] == "disk"
        images[firmware] = newest.id
    return images


# ---- real VMs: the devcloud's real host (zone qemu) ------------------------------------------
def qo_devcloud(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "quintupleo", "devcloud", *args],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def segment(conn, name, real_host):
    """Factory: segment(suffix, address) -> (network, namespace): a network with a subnet
    without DHCP (198.51.100.0/24, no gateway) and a `devcloud netns` on it at ADDRESS."""
    made: list[tuple[object, str]] = []

    def _make(suffix: str, address: str = "198.51.100.1/24"):
        net = conn.network.create_network(name=f"{name}-{suffix}")
        conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="198.51.100.0/24",
                                   enable_dhcp=False, gateway_ip=None)
        namespace = f"{name}-{suffix}"
        made.append((net, namespace))
        qo_devcloud("netns", net.id, "--name", namespace, "--address", address)
        return net, namespace

    yield _make
    for net, namespace in made:
        subprocess.run([sys.executable, "-m", "quintupleo", "devcloud", "netns", "--delete",
                        namespace], capture_output=True, timeout=60, check=False)
        for port in conn.network.ports(network_id=net.id):
            conn.network.delete_port(port, ignore_missing=True)
        conn.network.delete_network(net, ignore_missing=True)


@pytest.fixture
def real_server(conn, name, real_host):
    """Factory: real_server(network, image_id, **port_args) -> an ACTIVE server in zone qemu on
    a new port (port security off unless asked); every one is deleted afterwards, and waited
    for, so that no VM outlives its test."""
    servers = []
    flavor = conn.compute.find_flavor("qo.tiny")

    def _boot(network, image_id: str, suffix: str = "", wait: bool = True, **port_args):
        port_args.setdefault("port_security_enabled", False)
        port = conn.network.create_port(network_id=network.id, name=f"{name}{suffix}",
                                         **port_args)
        server = conn.compute.create_server(
            name=f"{name}{suffix}", image_id=image_id, flavor_id=flavor.id,
            networks=[{"port": port.id}], availability_zone="qemu")
        servers.append(server)
        server = conn.compute.wait_for_server(server, wait=120, interval=0.3) if wait else server
        return server, port

    yield _boot
    for server in servers:
        conn.compute.delete_server(server, ignore_missing=True)
    for server in servers:
        conn.compute.wait_for_delete(server, wait=120, interval=0.3)
