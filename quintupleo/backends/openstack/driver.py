"""Nova servers as nodes: power through the compute API, one server list per refresh.

A node is on when its vm_state is active/rescued, or stopped with task powering-on (in error,
when its power state says running); any task_state means "busy". Power goes through the boot
strategy (boot.py: the Nova calls of each action; network and CD boots become rescues or
rebuilds), on the server as a read just before shows it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openstack
from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as os_exc

from quintupleo.backends.base import Backend
from quintupleo.backends.openstack import console
from quintupleo.backends.openstack.boot import STRATEGIES, Boot, BootStrategy
from quintupleo.errors import BackendError, ConfigError, NodeBusy, NotSupported
from quintupleo.images.glance import file_hash, publish
from quintupleo.images.ipxe import ipxe_image_name
from quintupleo.images.media import fetch
from quintupleo.model import (
    PLAIN_MACHINE,
    BootDevice,
    BootMode,
    BootOverride,
    Hardware,
    MachineSettings,
    NodeInfo,
    Observation,
    PowerAction,
    PowerState,
)

log = logging.getLogger(__name__)

ON_VM_STATES = {"active", "rescued", "resized"}
RUNNING = 1             # Nova's power_state for a running guest
GUEST_DOWN = (4, 6)     # its power_state SHUTDOWN, CRASHED: the guest stopped on its own
SETTLE_POLL = 0.5       # between reads while a strategy waits for a step's task to end
SETTLE_TIMEOUT = 600.0
_ID = re.compile(r"\s+(of\s+)?\S*\d\S*")
API_TIMEOUT = 60.0      # one cloud API call; a cloud that hangs is an error, not a hang


def observation(server: Any) -> Observation:
    vm_state = (server.vm_state or "").lower()
    task_state = server.task_state
    # A rescued guest that powered itself off (an agent's poweroff) stays "rescued": Nova's
    # power sync leaves that state alone and only records the power state (libvirt reports
    # the stop 15 s late); an active one Nova stops itself.
    on = (vm_state in ON_VM_STATES
          and not (vm_state == "rescued" and server.power_state in GUEST_DOWN)) \
        or (vm_state == "stopped" and task_state == "powering-on") \
        or (vm_state == "error" and server.power_state == RUNNING)
    fault = None
    if vm_state == "error":
        fault = (server.fault or {}).get("message") or "Nova set the server to ERROR"
    return Observation(PowerState.ON if on else PowerState.OFF, busy=task_state is not None,
                       fault=fault)


def image_of(server: Any) -> str:
    """The ID of the image a server was booted from ("" when booted from a volume)."""
    return getattr(server.image, "id", None) or ""


def call_kind(what: str) -> str:
    """A call's kind without the IDs its description names: `get 6c1f…` -> `get`."""
    return _ID.sub("", what).strip() or what.split(" ")[0]


class OpenStackBackend(Backend):
    name = "openstack"

    def __init__(self, cloud: str | None, prefix: str | None = None,
                 servers: list[str] | None = None, workers: int = 4,
                 connection: Any = None, strategy: str = "none",
                 images: dict[str, str] | None = None,
                 media_max_bytes: int = 4 << 30) -> None:
        self.cloud = cloud
        self.prefix = prefix
        self.wanted = list(servers or [])
        if strategy not in STRATEGIES:
            raise ConfigError(f"boot strategy {strategy!r}: choose one of "
                              f"{', '.join(STRATEGIES)}")
        self.strategy: BootStrategy = STRATEGIES[strategy]()
        self.has_media = self.strategy.boots_images   # a CD boot is a rescue into the ISO
        self.image_names = dict(images or {})     # boot mode -> iPXE image name or ID
        self.pxe_images: dict[BootMode, str] = {}   # boot mode -> iPXE image ID
        self.media_max_bytes = media_max_bytes
        self._media_users: dict[str, set[str]] = {}  # media image ID -> nodes it is inserted in
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openstack")
        self._conn = connection
        self._ids: set[str] = set()
        self._console_opened: dict[str, float] = {}   # node -> when its console last opened
        self._seen: dict[str, Observation] = {}        # the last refresh's view of each node
        self.calls = 0    # compute/network API calls made, for logs and benchmarks
        self.call_kinds: Counter[str] = Counter()      # ... by kind, for the BMC's metrics
        self._told_disk: set[str] = set()   # nodes whose network boot booted the disk, said

    async def _run(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        self.call_kinds[call_kind(what)] += 1
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
        except os_exc.ConflictException:
            raise
        except os_exc.HttpException as exc:
            raise BackendError(f"{what}: HTTP {exc.status_code} {exc.details or ''}".strip(),
                               exc.status_code) from None
        except os_exc.SDKException as exc:
            raise BackendError(f"{what}: {type(exc).__name__}: {exc}") from None
        except ks_exc.ClientException as exc:   # the cloud unreachable, or slower than API_TIMEOUT
            raise BackendError(f"{what}: the cloud did not answer ({type(exc).__name__}: "
                               f"{str(exc)[:160]})") from None

    async def _connection(self) -> Any:
        if self._conn is None:
            try:
                self._conn = await self._run("connect", connect, self.cloud,
                                             BMC_RATE_RETRIES, api_timeout=API_TIMEOUT)
            except BackendError as exc:
                raise ConfigError(f"cloud {self.cloud or '(OS_CLOUD)'}: {exc}; check "
                                  "clouds.yaml and --cloud / OS_CLOUD") from None
        return self._conn

    async def _list(self) -> list[Any]:
        conn = await self._connection()
        query = {"name": f"^{re.escape(self.prefix)}"} if self.prefix else {}
        servers: list[Any] = await self._run(
            "list servers", lambda: list(conn.compute.servers(details=True, **query)))
        return servers

    async def discover(self) -> list[NodeInfo]:
        conn = await self._connection()
        servers = await self._list()
        if self.wanted:
            by_key = {s.id: s for s in servers} | {s.name: s for s in servers}
            missing = [w for w in self.wanted if w not in by_key]
            if missing:
                raise ConfigError(f"no such server(s): {', '.join(missing)}")
            servers = list({by_key[w].id: by_key[w] for w in self.wanted}.values())
        else:
            servers = sorted(servers, key=lambda s: s.name)
        if not servers:
            raise ConfigError(f"no servers named {self.prefix}* in cloud {self.cloud}")
        self._ids = {s.id for s in servers}
        await self._prepare_strategy(conn)
        self.has_console = await self._offers_serial_console(conn, servers[0].id)
        ports = await self._run("list ports", lambda: list(conn.network.ports()))
        macs: dict[str, list[str]] = {}
        for port in sorted(ports, key=lambda p: p.created_at or ""):
            if port.device_id in self._ids:
                macs.setdefault(port.device_id, []).append(port.mac_address)
        images = await self._image_properties(conn, servers)
        return [self._info(s, macs.get(s.id, []), images.get(image_of(s), {})) for s in servers]

    async def _image_properties(self, conn: Any, servers: list[Any]) -> dict[str, dict[str, Any]]:
        """The properties of each server's image (one call per image; a deleted or hidden
        image has none: Nova's defaults, BIOS and no secure boot)."""
        found: dict[str, dict[str, Any]] = {}
        for image_id in sorted({image_of(s) for s in servers} - {""}):
            try:
                image = await self._run(f"get image {image_id}", conn.image.get_image, image_id)
            except BackendError as exc:
                if exc.status not in (403, 404):
                    log.warning("%s; its servers get Nova's default firmware", exc)
                continue
            # openstacksdk holds os_secure_boot apart from the other properties
            found[image_id] = {**(image.properties or {}),
                               "os_secure_boot": getattr(image, "needs_secure_boot", None)}
        return found

    @staticmethod
    def _info(server: Any, macs: list[str], image: dict[str, Any]) -> NodeInfo:
        """A server as a node; its firmware is the image's (`hw_firmware_type`), its secure
        boot the image's or the flavor's (`os_secure_boot`, `os:secure_boot`): Nova's to set."""
        flavor = server.flavor
        secure = "required" in (image.get("os_secure_boot"),
                                (flavor.extra_specs or {}).get("os:secure_boot"))
        return NodeInfo(id=server.id, name=server.name, uuid=server.id, macs=tuple(macs),
                        cpus=int(flavor.vcpus or 1), memory_mb=int(flavor.ram or 512),
                        local_gb=max(1, int(flavor.disk or 1)),
                        extra={"flavor": flavor.original_name or flavor.name or ""},
                        # what Nova's libvirt driver writes in the SMBIOS tables by default
                        hardware=Hardware(manufacturer="OpenStack Foundation",
                                          model="OpenStack Nova", serial=server.id,
                                          boot_mode="Uefi" if image.get("hw_firmware_type")
                                          == "uefi" else "Bios", secure_boot_fixed=secure))

    async def _prepare_strategy(self, conn: Any) -> None:
        """Refuse to start with a strategy this cloud cannot do: say why now, not at a boot."""
        strategy = self.strategy
        if not strategy.boots_images:
            return
        offered = await self._run("compute versions", microversion, conn)
        if offered < strategy.min_microversion:
            wanted = ".".join(map(str, strategy.min_microversion))
            raise ConfigError(f"boot strategy {strategy.name} needs Nova microversion {wanted} "
                              f"({strategy.needs}); cloud {self.cloud} offers "
                              f"{'.'.join(map(str, offered))}: choose another strategy")
        for mode in BootMode:
            wanted = self.image_names.get(mode.value, ipxe_image_name(
                "uefi" if mode is BootMode.UEFI else "bios"))
            self.pxe_images[mode] = await self._image_id(conn, wanted)

    async def _image_id(self, conn: Any, name_or_id: str) -> str:
        """The newest active image of that name (or that ID)."""
        images = await self._run(f"find image {name_or_id}",
                                 lambda: list(conn.image.images(name=name_or_id)))
        active = sorted((i for i in images if i.status == "active"),
                        key=lambda i: i.created_at or "")
        if active:
            return str(active[-1].id)
        try:
            image = await self._run(f"get image {name_or_id}", conn.image.get_image, name_or_id)
        except BackendError:
            image = None
        if image is None or image.status != "active":
            raise ConfigError(f"boot strategy {self.strategy.name}: no active image "
                              f"{name_or_id!r} in cloud {self.cloud}; run `quintupleo image "
                              f"upload --cloud {self.cloud}`")
        return str(image.id)

    def staged(self, action: PowerAction, boot: BootOverride) -> bool:
        return self.strategy.boots_images and action.boots

    def boot_for(self, override: BootOverride, media: str | None) -> Boot:
        if override.device is BootDevice.PXE and override.mode in self.pxe_images:
            return self.strategy.resolve(Boot(BootDevice.PXE, self.pxe_images[override.mode]))
        if override.device is BootDevice.CDROM and media:
            return self.strategy.resolve(Boot(BootDevice.CDROM, media))
        return Boot()

    async def insert_media(self, node_id: str, url: str) -> str:
        """Fetch the ISO, put it in Glance (an identical one is reused): its image ID."""
        conn = await self._connection()
        path = await fetch(url, self.media_max_bytes)
        try:
            digest = await asyncio.get_running_loop().run_in_executor(
                self._executor, file_hash, path, "sha256")
            image = await self._run("upload media", publish, conn, path,
                                    f"quintupleo-media-{digest[:16]}", "iso",
                                    {"hw_rescue_device": "cdrom", "quintupleo_image": "media"})
        finally:
            path.unlink(missing_ok=True)
        self.remember_media(node_id, image.id)
        return str(image.id)

    def remember_media(self, node_id: str, media: str | None) -> None:
        if media is not None:
            self._media_users.setdefault(media, set()).add(node_id)

    async def eject_media(self, node_id: str, media: str) -> None:
        """Forget the node's CD; its Glance image goes when no other node holds it."""
        users = self._media_users.get(media, set())
        users.discard(node_id)
        if users:
            return
        self._media_users.pop(media, None)
        conn = await self._connection()
        try:
            await self._run(f"delete image {media}", conn.image.delete_image, media,
                            ignore_missing=True)
        except BackendError as exc:
            log.warning("virtual media image %s not deleted: %s", media, exc)

    # ---- serial console: Nova's `serial` remote console (console.py) --------------------------
    async def _offers_serial_console(self, conn: Any, server_id: str) -> bool:
        """Asked once, of the first node: the nodes of one backend share a cloud (and zone)."""
        try:
            await self._run("serial console", conn.compute.create_console, server_id,
                            "serial")
        except BackendError as exc:
            if console.unavailable(exc.status):
                log.info("cloud %s offers no serial console: SOL and the Redfish console "
                         "are off", self.cloud)
                return False
        except os_exc.ConflictException:
            pass            # the server is not ready now: the console type is there
        return True

    async def open_console(self, node_id: str) -> tuple[Any, Any]:
        """Connects once the server runs; a closed console (off, rebooting) is reopened at most
        once per console.RETRY, and Nova is not asked while the refreshes see the node off."""
        if not self.has_console:
            raise NotSupported("this cloud offers no serial console")
        conn = await self._connection()
        loop = asyncio.get_running_loop()
        while True:
            wait = self._console_opened.get(node_id, 0.0) + console.RETRY - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._console_opened[node_id] = loop.time()
            seen = self._seen.get(node_id)
            if seen is not None and seen.power is PowerState.OFF and not seen.busy:
                continue   # off at the last refresh: no console to ask Nova for
            try:
                answer = await self._run(f"serial console of {node_id}",
                                         conn.compute.create_console, node_id, "serial")
                return await console.connect(answer["url"],
                                             lambda: self._console_log(conn, node_id))
            except (BackendError, os_exc.ConflictException, ConnectionError) as exc:
                log.debug("server %s: no serial console yet: %s", node_id, exc)

    async def _console_log(self, conn: Any, node_id: str) -> bytes:
        """This boot's console output so far (none when the cloud keeps no log)."""
        try:
            answer = await self._run(f"console log of {node_id}",
                                     conn.compute.get_server_console_output, node_id)
        except (BackendError, os_exc.ConflictException):
            return b""
        return (answer.get("output") or "").encode()

    async def observe(self) -> dict[str, Observation]:
        self._seen = {s.id: observation(s) for s in await self._list() if s.id in self._ids}
        return self._seen

    async def power(self, node_id: str, action: PowerAction, boot: BootOverride,
                    media: str | None = None,
                    settings: MachineSettings = PLAIN_MACHINE) -> None:
        conn = await self._connection()
        server = await self._run(f"get {node_id}", conn.compute.get_server, node_id)
        if server.task_state is not None:
            raise NodeBusy(f"server {node_id} has task {server.task_state}")
        resolved = self.boot_for(boot, media)
        try:
            await self.strategy.power(_Steps(self, conn), server, action, resolved)
        except os_exc.ConflictException as exc:   # a task began between our read and call
            raise NodeBusy(f"server {node_id}: {exc.details or 'conflict'}") from None
        if resolved.image is not None and action.boots:
            log.info("server %s: %s boot through %s with image %s", node_id,
                     resolved.device.value, self.strategy.name, resolved.image)
        elif (action.boots and boot.active and boot.device is not resolved.device
              and node_id not in self._told_disk):
            self._told_disk.add(node_id)    # once per node: a PXE test would repeat it forever
            log.warning("server %s: a %s boot was asked for; boot strategy %s boots the disk "
                        "(serve it with --boot-strategy rescue or rebuild to network-boot)",
                        node_id, boot.device.value, self.strategy.name)

    async def settle(self, node_id: str) -> Any:
        conn = await self._connection()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_TIMEOUT
        while True:
            server = await self._run(f"get {node_id}", conn.compute.get_server, node_id)
            if (server.vm_state or "").lower() == "error":
                fault = (server.fault or {}).get("message", "no fault recorded")
                raise BackendError(f"server {node_id} went to ERROR: {fault}")
            if server.task_state is None:
                return server
            if loop.time() > deadline:
                raise BackendError(f"server {node_id}: task {server.task_state} did not end")
            await asyncio.sleep(SETTLE_POLL)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._conn is not None:
            self._conn.close()


class _Steps:
    """The driver as a strategy sees it: counted calls, waits for tasks, the compute proxy."""

    def __init__(self, backend: OpenStackBackend, conn: Any) -> None:
        self._backend = backend
        self.compute = conn.compute

    async def call(self, what: str, fn: Any) -> Any:
        return await self._backend._run(what, fn)

    async def settle(self, server_id: str) -> Any:
        return await self._backend.settle(server_id)


# How often a call the cloud refuses with 429 or 503 is made again (keystoneauth's retries):
# an environment's creation can wait for the cloud (0.5 s doubling: 2 min in all); the BMC's
# refresh and power calls should not wait long (7.5 s), the next refresh asks again anyway
RATE_RETRIES, BMC_RATE_RETRIES = 8, 4


def connect(cloud: str | None, retries: int = RATE_RETRIES, **options: Any) -> Any:
    """openstacksdk's connection to the clouds.yaml entry, making a call the cloud refuses
    for its rate limit (429) or as unavailable (503) again after its Retry-After, or with
    back-off (0.5 s doubling) when it gives none — unless the entry sets `status_code_retries`
    itself."""
    conn = openstack.connect(cloud=cloud, **options)
    # read when each service's proxy is first made, so set before any call
    conn.config.config.setdefault("status_code_retries", retries)
    return conn


def microversion(conn: Any) -> tuple[int, int]:
    """The compute API's highest microversion (keystoneauth gives a tuple or a string)."""
    version = conn.compute.get_endpoint_data().max_microversion or (2, 1)
    if isinstance(version, str):
        version = version.split(".")
    major, minor = (int(p) for p in tuple(version)[:2])
    return major, minor
