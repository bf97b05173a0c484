"""Put a local image file in Glance once: an identical one already there is reused.

"Identical" is decided by Glance's own hash of the stored data (os_hash_value, SHA-512 by
default), not by a name or a label we wrote ourselves.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openstack import exceptions as os_exc

from quintupleo.errors import BackendError
from quintupleo.images.ipxe import BuiltImage, ipxe_image_name
from quintupleo.images.relay import COMMAND_LINE, RelayImage

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Published:
    name: str
    id: str
    reused: bool


def file_hash(path: Path, algorithm: str = "sha512") -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as data:
        while chunk := data.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def publish(conn: Any, path: Path, name: str, disk_format: str,
            properties: dict[str, str], container_format: str = "bare") -> Published:
    """The active image named `name` holding exactly `path`'s bytes; uploaded if none is."""
    hashes: dict[str, str] = {}   # algorithm -> the file's digest, computed once each
    try:
        for image in conn.image.images(name=name):
            if image.status != "active" or not image.hash_value:
                continue
            algorithm = image.hash_algo or "sha512"
            if algorithm not in hashes:
                hashes[algorithm] = file_hash(path, algorithm)
            if image.hash_value == hashes[algorithm]:
                return Published(name, image.id, True)
        image = conn.image.create_image(
            name=name, filename=str(path), disk_format=disk_format,
            container_format=container_format,
            visibility="private", allow_duplicates=True, wait=True, timeout=600, **properties)
    except os_exc.SDKException as exc:
        _forget_partial(conn, name)
        raise BackendError(f"Glance: cannot upload {name}: {exc}") from None
    return Published(name, image.id, False)


def _forget_partial(conn: Any, name: str) -> None:
    """A refused upload leaves a queued image record behind: delete it, leak nothing."""
    try:
        for image in conn.image.images(name=name):
            if image.status in ("queued", "saving", "importing", "killed"):
                conn.image.delete_image(image, ignore_missing=True)
    except os_exc.SDKException:
        pass


def ipxe_properties(firmware: str) -> dict[str, str]:
    """What Nova needs to boot the iPXE disk right, as a rescue disk or as a root disk."""
    properties = {
        "hw_firmware_type": firmware,
        "hw_rescue_device": "disk",       # stable rescue (2.87): the node's disks stay attached
        "hw_rescue_bus": "virtio",
        "quintupleo_image": "ipxe",
        "quintupleo_firmware": firmware,
    }
    if firmware == "uefi":
        properties["os_secure_boot"] = "disabled"   # GRUB and iPXE here are not signed
    return properties


def publish_ipxe(conn: Any, image: BuiltImage) -> Published:
    return publish(conn, image.path, ipxe_image_name(image.firmware), "raw",
                   ipxe_properties(image.firmware))



def publish_relay(conn: Any, image: RelayImage, name: str) -> Published:
    """The relay's kernel (aki) and ramdisk (ari), and its root image naming both: Nova's
    libvirt driver boots the kernel directly, with the image's command line."""
    kernel = publish(conn, image.kernel, f"{name}-kernel", "aki", {}, "aki")
    ramdisk = publish(conn, image.ramdisk, f"{name}-ramdisk", "ari", {}, "ari")
    return publish(conn, image.root, name, "raw", {
        "kernel_id": kernel.id, "ramdisk_id": ramdisk.id, "os_command_line": COMMAND_LINE,
        "quintupleo_image": "relay"})
