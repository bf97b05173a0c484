"""Where a lab lives on disk, and what it is made of (lab.json).

    $XDG_STATE_HOME/quintupleo/labs/NAME/
      lab.json                  the lab: its nodes, network and BMC endpoints
      nodes/NODE/disk.qcow2     the node's disk; qemu.pid, qmp.sock, console.sock, serial.log
      bmc/                      the BMC's state (boot overrides, Redfish certificate)
      bmc.pid, bmc.log          the BMC process serving the lab
      nodes.json                Ironic's inventory of the lab
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from quintupleo.errors import ConfigError
from quintupleo.paths import state_dir

NAME = re.compile(r"^[a-z][a-z0-9-]{0,11}$")   # short: it prefixes interface names


def labs_dir() -> Path:
    return state_dir("labs")


@dataclass(frozen=True)
class LabNode:
    name: str
    index: int
    uuid: str
    mac: str
    cpus: int = 1
    memory_mb: int = 512
    disk_gb: int = 2
    role: str | None = None        # its profile in inventories (`--role NAME=COUNT`)
    firmware: str = "bios"         # bios (SeaBIOS) or uefi (OVMF)
    profile: str | None = None     # its profile, when not the role's name (from a spec)


@dataclass
class Lab:
    name: str
    nodes: list[LabNode]
    cidr: str = "192.168.24.0/24"
    netns: str | None = None       # as root: the lab network's namespace (bridge br0 in it)
    mcast: str | None = None       # rootless: the L2 segment's UDP multicast group:port
    ipmi_port_base: int = 6230
    redfish_port: int = 8000
    accel: str = "tcg"
    tftp_root: str | None = None   # the lab's own DHCP/TFTP server serves this directory ...
    bootfile: str | None = None    # ... and tells PXE clients to boot this file
    inventory_driver: str = "ipmi"  # how nodes.json has Ironic reach the BMC: ipmi | redfish
    extra: dict[str, str] = field(default_factory=dict)

    # ---- where things are -------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        return labs_dir() / self.name

    def node_dir(self, node: LabNode) -> Path:
        return self.dir / "nodes" / node.name

    @property
    def process_tag(self) -> str:
        """In every QEMU's -name: find the lab's processes even without their PID files."""
        return f"qo-lab-{self.name}-"

    # ---- persistence ------------------------------------------------------------------------
    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "lab.json"
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(self), indent=2))
        partial.replace(path)

    @classmethod
    def load(cls, name: str) -> Lab:
        path = labs_dir() / name / "lab.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"no lab {name!r} (looked in {path.parent}); "
                              "`quintupleo lab up` makes one") from None
        except ValueError as exc:
            raise ConfigError(f"{path} is damaged ({exc}); `quintupleo lab down --name {name}` "
                              "cleans up what it can") from None
        data["nodes"] = [LabNode(**n) for n in data["nodes"]]
        return cls(**data)


@dataclass(frozen=True)
class Shape:
    """What a node is made of."""

    cpus: int = 1
    memory_mb: int = 512
    disk_gb: int = 2
    firmware: str = "bios"         # bios (SeaBIOS) or uefi (OVMF)


@dataclass(frozen=True)
class Role:
    name: str | None               # None: plain nodes `node-i`
    count: int
    shape: Shape = Shape()
    profile: str | None = None     # the inventory's profile, if not the role's name


def new_nodes(lab: str, roles: list[Role]) -> list[LabNode]:
    """Nodes ROLE-i for each role; `node-i` for a role without a name. Stable identities: the
    same lab and node names give the same UUIDs and MACs every time."""
    nodes: list[LabNode] = []
    for role in roles:
        for number in range(role.count):
            name = f"{role.name or 'node'}-{number}"
            seed = hashlib.sha256(f"{lab}/{name}".encode()).digest()
            mac = "52:54:00:" + ":".join(f"{b:02x}" for b in seed[:3])
            shape = role.shape
            nodes.append(LabNode(name, len(nodes), str(uuid.UUID(bytes=seed[3:19], version=4)),
                                 mac, shape.cpus, shape.memory_mb, shape.disk_gb, role.name,
                                 shape.firmware, role.profile))
    return nodes


ROLE_OPTIONS = {"cpus": "cpus", "memory": "memory_mb", "disk": "disk_gb", "boot-mode": "firmware"}
ROLE_SYNTAX = ("NAME=COUNT[,cpus=N][,memory=MiB][,disk=GiB][,boot-mode=bios|uefi], "
               "e.g. compute=2,memory=1024,boot-mode=uefi")


def check_shape(shape: Shape, where: str) -> Shape:
    if shape.cpus < 1 or shape.memory_mb < 128 or shape.disk_gb < 1:
        raise ConfigError(f"{where}: at least 1 CPU, 128 MiB of memory and 1 GiB of disk")
    if shape.firmware not in ("bios", "uefi"):
        raise ConfigError(f"{where}: boot mode bios or uefi, not {shape.firmware!r}")
    return shape


def parse_roles(specs: list[str], default: Shape = Shape()) -> list[Role]:
    """`--role` options, in order; what a role does not say comes from `default`."""
    roles: list[Role] = []
    for spec in specs:
        head, *options = spec.split(",")
        name, _, count = head.partition("=")
        if not re.match(r"^[a-z][a-z0-9-]{0,15}$", name) or not count.isdigit() \
                or not int(count) > 0:
            raise ConfigError(f"--role {spec!r}: {ROLE_SYNTAX} (lower-case name, count at "
                              "least 1)")
        if name in {r.name for r in roles}:
            raise ConfigError(f"--role {name} given twice")
        changes: dict[str, int | str] = {}
        for option in options:
            key, _, value = option.partition("=")
            field_name = ROLE_OPTIONS.get(key)
            if field_name is None:
                raise ConfigError(f"--role {spec!r}: unknown option {key!r}; {ROLE_SYNTAX}")
            if not value:
                raise ConfigError(f"--role {spec!r}: {key} needs a value; {ROLE_SYNTAX}")
            if field_name != "firmware" and not value.isdigit():
                raise ConfigError(f"--role {spec!r}: {key} must be a whole number")
            changes[field_name] = value if field_name == "firmware" else int(value)
        shape = check_shape(replace(default, **changes), f"--role {name}")  # type: ignore[arg-type]
        roles.append(Role(name, int(count), shape))
    return roles


@dataclass(frozen=True)
class Addresses:
    """Where a lab lives on the network: its CIDR and its BMC's ports (the defaults of `up`)."""

    cidr: str = "192.168.24.0/24"
    ipmi_port_base: int = 6230
    redfish_port: int = 8000


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ConfigError(f"lab name {name!r}: lower-case letters, digits and '-', starting "
                          "with a letter, at most 12 characters")
    return name
