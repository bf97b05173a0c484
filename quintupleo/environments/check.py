"""Probe a cloud for every feature an environment needs, and say what a failure disables.

Probes act, they do not guess: they create a scratch network, subnet and ports (deleted at the
end, whatever happens) and read the API's own limits and microversions.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openstack import exceptions as os_exc

from quintupleo.backends.openstack.driver import microversion
from quintupleo.environments.kinds import kinds
from quintupleo.environments.plan import plan
from quintupleo.environments.spec import EnvironmentSpec
from quintupleo.images.ipxe import ipxe_image_name


@dataclass(frozen=True)
class Finding:
    feature: str
    ok: bool
    must: bool            # a must-have: environments cannot be made without it
    detail: str
    disables: str         # what a failure costs


class CloudCheck:
    def __init__(self, conn: Any, spec: EnvironmentSpec | None = None) -> None:
        self.conn = conn
        self.spec = spec
        self.findings: list[Finding] = []
        self._scratch: list[tuple[Callable[..., Any], Any]] = []   # deleters, newest last
        self._server: Any = None                                    # the scratch server

    def _add(self, feature: str, must: bool, disables: str, probe: Callable[[], str]) -> None:
        try:
            detail, ok = probe(), True
        except (os_exc.SDKException, ValueError) as exc:
            detail, ok = _reason(exc), False
        self.findings.append(Finding(feature, ok, must, detail, disables))

    def _keep(self, deleter: Callable[..., Any], resource: Any) -> Any:
        self._scratch.append((deleter, resource))
        return resource

    def run(self) -> list[Finding]:
        net = self.conn.network
        try:
            self._add("authentication", True, "everything",
                      lambda: f"token for project {self.conn.current_project_id}")
            compute = microversion(self.conn)
            self._add("Nova microversion >= 2.52 (tags at boot)", True,
                      "tagging nodes, so delete/audit by tag",
                      lambda: _at_least(compute, (2, 52)))
            strategy = self.spec.bmc.boot_strategy if self.spec is not None else "none"
            self._add("Nova stable rescue (2.87)", strategy == "rescue",
                      "network and CD boots by rescue (boot strategy rescue)",
                      lambda: _at_least(compute, (2, 87)))
            self._add("Nova rebuild of volume-backed servers (2.93)", False,
                      "network boots by rebuild of volume-backed nodes",
                      lambda: _at_least(compute, (2, 93)))
            self._add("iPXE boot images in Glance", strategy != "none",
                      "network boots (boot strategies rescue and rebuild)", self._ipxe_images)
            extensions = {e.alias for e in net.extensions()}
            routed = self.spec is not None and self.spec.external is not None
            for alias, must, disables in (
                    ("port-security", True, "the user's own DHCP/PXE on node ports"),
                    ("allowed-address-pairs", False, "virtual IPs on ports that keep security"),
                    ("standard-attr-tag", True, "tags on networks and ports (delete/audit)"),
                    ("router", routed, "the BMC host in the cloud, the undercloud's floating "
                                       "IP")):
                self._add(f"Neutron extension {alias}", must, disables,
                          functools.partial(_present, alias, extensions))
            network = self._keep(net.delete_network,
                                 net.create_network(name=f"qo-check-{uuid.uuid4().hex[:8]}"))
            self._add("subnet without DHCP or gateway", True, "provisioning networks",
                      lambda: self._subnet(network))
            self._add("port with port security disabled", True,
                      "the user's own DHCP/PXE and virtual IPs",
                      lambda: self._port(network, port_security_enabled=False))
            addressless = self.spec is not None and any(not n.fixed_ips
                                                          for n in self.spec.networks)
            self._add("port without a fixed IP", addressless,
                      "networks with `fixed_ips: false` (addresses from your own DHCP only)",
                      lambda: self._port(network, fixed_ips=[]))
            self._add("tagging a network", True, "delete/audit by tag",
                      lambda: self._tag(network))
            if self.spec is not None:
                self._add("Nova serial console", False,
                          "IPMI SOL and the Redfish console of the nodes (they say it is off)",
                          lambda: self._serial_console(network))
            if strategy != "none":
                self._add(f"boot strategy {strategy} on a scratch server", True,
                          f"network boots by {strategy}", lambda: self._strategy(network))
            self._add("image upload", False, "iPXE boot images (PXE issue)", self._image)
            self._add("external network", routed,
                      "the BMC host in the cloud, the undercloud's floating IP", self._external)
            self._add("application credentials",
                      self.spec is not None and self.spec.bmc.host is not None,
                      "the BMC host in the cloud (its own credential)",
                      self._application_credential)
            self._add("quotas", self.spec is not None, "creating the environment",
                      self._quotas)
            for network in self.spec.networks if self.spec is not None else ():
                if network.existing is not None:
                    self._add(f"existing network {network.existing} ({network.name})", True,
                              "the roles' NICs on it",
                              functools.partial(self._existing, network.existing,
                                                network.port_security))
        finally:
            for deleter, resource in reversed(self._scratch):
                with contextlib.suppress(os_exc.SDKException):
                    deleter(resource)
        return self.findings

    def _subnet(self, network: Any) -> str:
        subnet = self.conn.network.create_subnet(
            network_id=network.id, cidr="192.0.2.0/24", ip_version=4, enable_dhcp=False,
            gateway_ip=None, name=network.name)
        if subnet.is_dhcp_enabled or subnet.gateway_ip is not None:
            raise ValueError("the cloud turned DHCP or a gateway back on")
        return "created"

    def _port(self, network: Any, **attrs: Any) -> str:
        port = self._keep(self.conn.network.delete_port,
                          self.conn.network.create_port(network_id=network.id, **attrs))
        if "port_security_enabled" in attrs and port.is_port_security_enabled is not False:
            raise ValueError("the port kept its security")
        if "fixed_ips" in attrs:
            if port.fixed_ips:
                raise ValueError("the port got an address anyway")
            # Nova boots on an address-less port only if Neutron marks it so (the extension
            # comes with the segments plugin).
            body = self.conn.network.get(f"/ports/{port.id}").json()["port"]
            if body.get("ip_allocation") != "none":
                raise ValueError("created, but Nova refuses it: Neutron lacks the ip_allocation "
                                 "extension")
        return "created"

    def _ipxe_images(self) -> str:
        found = []
        for firmware in ("bios", "uefi"):
            name = ipxe_image_name(firmware)
            if not any(i.status == "active" for i in self.conn.image.images(name=name)):
                raise ValueError(f"no active image {name}: run `quintupleo image upload`")
            found.append(name)
        return ", ".join(found)

    def _scratch_server(self, network: Any) -> Any:
        """A server of the first role's image, flavor and zone, booted once for the probes
        that need one (deleted at the end)."""
        if self._server is not None:
            return self._server
        assert self.spec is not None
        compute, role = self.conn.compute, self.spec.roles[0]
        port = self._keep(self.conn.network.delete_port,
                          self.conn.network.create_port(network_id=network.id,
                                                        port_security_enabled=False))
        flavor = compute.find_flavor(role.flavor, ignore_missing=False)
        base = self.conn.image.find_image(role.image, ignore_missing=False)
        zone = {"availability_zone": role.availability_zone} if role.availability_zone else {}
        server = self._keep(self._delete_server, compute.create_server(
            name=f"qo-check-{uuid.uuid4().hex[:8]}", image_id=base.id, flavor_id=flavor.id,
            networks=[{"port": port.id}], **zone))
        self._server = compute.wait_for_server(server, wait=300)
        return self._server

    def _serial_console(self, network: Any) -> str:
        """Ask Nova for the serial console of a scratch server of the spec's first role: the
        hosts of its zone answer (a cloud can offer consoles on some hosts only)."""
        server = self._scratch_server(network)
        self.conn.compute.create_console(server, "serial")
        return "offered"

    def _strategy(self, network: Any) -> str:
        """Boot a server from a role's image and flavor, then rescue or rebuild it with the
        iPXE image: what every network boot will ask of Nova (a policy can forbid it)."""
        assert self.spec is not None
        compute = self.conn.compute
        images = [i for i in self.conn.image.images(name=ipxe_image_name("bios"))
                  if i.status == "active"]
        if not images:
            raise ValueError("no iPXE image to boot: run `quintupleo image upload`")
        image = images[-1]
        server = self._scratch_server(network)
        if self.spec.bmc.boot_strategy == "rescue":
            compute.rescue_server(server, image=image.id)
            compute.wait_for_server(server, status="RESCUE", wait=300)
            return "rescued into the iPXE image"
        compute.rebuild_server(server, image.id)
        compute.wait_for_server(server, wait=300)
        return "rebuilt with the iPXE image"

    def _delete_server(self, server: Any) -> None:
        """Gone before its port and network are deleted (Neutron refuses a network in use)."""
        self.conn.compute.delete_server(server, ignore_missing=True)
        self.conn.compute.wait_for_delete(server, wait=300)

    def _tag(self, network: Any) -> str:
        self.conn.network.add_tag(network, "quintupleo:check")
        return "tagged"

    def _image(self) -> str:
        image = self._keep(self.conn.image.delete_image, self.conn.image.create_image(
            name=f"qo-check-{uuid.uuid4().hex[:8]}", data=b"\0" * 512, disk_format="raw",
            container_format="bare", allow_duplicates=True))
        return f"uploaded {image.size or 512} bytes"

    def _application_credential(self) -> str:
        identity = self.conn.identity
        user = self.conn.current_user_id
        credential = identity.create_application_credential(
            user, name=f"qo-check-{uuid.uuid4().hex[:8]}")
        self._keep(lambda c: identity.delete_application_credential(user, c), credential)
        return "created"

    def _external(self) -> str:
        if self.spec is not None and self.spec.external is not None:
            network = self.conn.network.find_network(self.spec.external, ignore_missing=False)
            if not network.is_router_external:
                raise ValueError(f"{self.spec.external} is not external (router:external)")
            return f"{self.spec.external} is external"
        names = sorted(n.name for n in self.conn.network.networks(is_router_external=True))
        if not names:
            raise ValueError("none offered")
        return "offered: " + ", ".join(names)

    def _existing(self, name: str, security: bool) -> str:
        """A network of the cloud the spec uses: found, and what using it leaves out."""
        found = self.conn.network.find_network(name, ignore_missing=False)
        left = []
        if security:
            left.append("port security stays on: your own DHCP/PXE server's answers are "
                        "dropped unless its port allows them; VIPs go in allowed address pairs")
        if any(s.is_dhcp_enabled for s in self.conn.network.subnets(network_id=found.id)):
            left.append("Neutron's DHCP answers on it too: your PXE server competes with it")
        return "; ".join(left) or "used as it is: the environment never deletes it"

    def _quotas(self) -> str:
        limits = self.conn.compute.get_limits().absolute
        free_instances = limits.instances - limits.instances_used
        if self.spec is None:
            return f"{free_instances} instances, {limits.total_cores - limits.total_cores_used} " \
                   "cores free (give --spec to check an environment)"
        wanted = Counter(instances=0)
        described = kinds(self.spec.resource_name(""))
        for item in plan(self.spec):
            quota = described[item.kind].quota
            if quota:
                wanted[quota] += 1
        free = {"instances": free_instances}
        quota = self.conn.network.get_quota(self.conn.current_project_id, details=True)
        for kind in wanted.keys() - {"instances"}:
            detail = getattr(quota, kind)
            limit = detail["limit"]
            free[kind] = 1 << 30 if limit < 0 else limit - detail["used"] - detail["reserved"]
        short = [f"{kind}: {wanted[kind]} wanted, {free[kind]} free"
                 for kind in sorted(wanted) if wanted[kind] > free[kind]]
        if short:
            raise ValueError("; ".join(short))
        return ", ".join(f"{wanted[kind]} {kind}" for kind in sorted(wanted)) + " fit"


def _at_least(version: tuple[int, int], wanted: tuple[int, int]) -> str:
    if version < wanted:
        raise ValueError(f"the cloud offers {version[0]}.{version[1]}")
    return f"{version[0]}.{version[1]}"


def _present(alias: str, extensions: set[str]) -> str:
    if alias not in extensions:
        raise ValueError("not offered")
    return "offered"


def _reason(exc: Exception) -> str:
    if isinstance(exc, os_exc.HttpException):
        return f"HTTP {exc.status_code}: {exc.details or exc.message}"
    return str(exc) or type(exc).__name__
