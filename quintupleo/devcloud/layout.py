"""Where the local cloud keeps its files, and the settings chosen once at install time.

Everything lives under one home directory:

    venv/     the services' own virtualenv (Keystone, Placement, Nova, Glance, Neutron)
    etc/      rendered configuration, one folder per service
    data/     databases, images, keys, compute state, RabbitMQ's store
    golden/   a copy of data/ taken right after bootstrap; `reset` restores it
    logs/     one log file per service
    run/      one PID file per running service; netns/: the namespaces `devcloud netns` made
    libvirt/  the real host's libvirt: its etc, lib, cache, log and run dirs, bind-mounted over
              the system paths in the mount namespace libvirtd and virtlogd run in
    state.json  ports and generated passwords (mode 0600)
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from quintupleo.errors import DevcloudError

HOST = "127.0.0.1"
DEFAULT_PORT_BASE = 19000
# Offsets from the port base, one per listening socket.
PORT_OFFSETS = {
    "keystone": 0,
    "nova": 1,
    "placement": 2,
    "glance": 3,
    "neutron": 4,
    "rabbitmq": 5,
    "epmd": 6,
    "rabbitmq-dist": 7,
    "serialproxy": 8,
}
# The real host's QEMUs listen for Nova's serial consoles on 127.0.0.1, base+100 to base+199.
SERIAL_PORTS = (100, 199)


def default_home() -> Path:
    if os.environ.get("QUINTUPLEO_HOME"):
        return Path(os.environ["QUINTUPLEO_HOME"]) / "devcloud"
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "quintupleo" / "devcloud"


@dataclass(frozen=True)
class Layout:
    home: Path

    @property
    def venv(self) -> Path:
        return self.home / "venv"

    @property
    def etc(self) -> Path:
        return self.home / "etc"

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def golden(self) -> Path:
        return self.home / "golden"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def state_file(self) -> Path:
        return self.home / "state.json"

    @property
    def libvirt(self) -> Path:
        return self.home / "libvirt"

    @property
    def libvirt_socket(self) -> Path:
        return self.libvirt / "run" / "libvirt-sock"

    @property
    def netns_records(self) -> Path:
        return self.run / "netns"

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    def db(self, name: str) -> Path:
        return self.data / "db" / f"{name}.sqlite"

    def db_url(self, name: str) -> str:
        return f"sqlite:///{self.db(name)}"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def pid_file(self, service: str) -> Path:
        return self.run / f"{service}.pid"


def _password() -> str:
    return secrets.token_urlsafe(18)


@dataclass
class State:
    """Chosen once, on the first `up`, and kept so later runs find the same cloud."""

    port_base: int = DEFAULT_PORT_BASE
    admin_password: str = field(default_factory=_password, repr=False)
    member_password: str = field(default_factory=_password, repr=False)
    service_password: str = field(default_factory=_password, repr=False)
    rabbit_password: str = field(default_factory=_password, repr=False)
    bootstrapped: bool = False
    # The clouds.yaml entry names of this cloud, chosen on the first `up` (see clouds_yaml).
    cloud_name: str = ""
    # Whether the real host (Nova's libvirt driver, zone `qemu`) runs: set by each `up`.
    vms: bool = False

    def port(self, name: str) -> int:
        return self.port_base + PORT_OFFSETS[name]

    @property
    def serial_port_range(self) -> str:
        return f"{self.port_base + SERIAL_PORTS[0]}:{self.port_base + SERIAL_PORTS[1]}"

    def url(self, name: str) -> str:
        return f"http://{HOST}:{self.port(name)}"

    @property
    def auth_url(self) -> str:
        return f"{self.url('keystone')}/v3"

    @property
    def transport_url(self) -> str:
        return f"rabbit://quintupleo:{self.rabbit_password}@{HOST}:{self.port('rabbitmq')}/"

    @classmethod
    def load(cls, layout: Layout) -> State | None:
        try:
            raw = layout.state_file.read_text()
        except FileNotFoundError:
            return None
        try:
            return cls(**json.loads(raw))
        except (ValueError, TypeError) as exc:
            raise DevcloudError(
                f"the data dir is corrupt: {layout.state_file} cannot be read "
                f"({type(exc).__name__})",
                hint=f"Remove {layout.home} (or choose another --home) and run "
                     "`quintupleo devcloud up`.",
            ) from None

    def save(self, layout: Layout) -> None:
        layout.home.mkdir(parents=True, exist_ok=True)
        tmp = layout.state_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(self), fh, indent=2)
        tmp.replace(layout.state_file)
