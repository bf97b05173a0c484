"""`quintupleo image build | upload`: the iPXE network-boot images the PXE strategies use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from quintupleo.errors import QuintupleOError
from quintupleo.images.ipxe import (
    DEFAULT_MTU,
    BuiltImage,
    IpxeOptions,
    build,
    default_dir,
    file_sha256,
)

app = typer.Typer(help="iPXE boot images: build them, put them in Glance.",
                  no_args_is_help=True, rich_markup_mode=None)
console = Console()
err = Console(stderr=True)


OutDir = Annotated[Path | None, typer.Option("--out", help="Where the images go "
                                             "[default: ~/.local/state/quintupleo/images].")]
Mtu = Annotated[int, typer.Option(help="MTU set on each NIC before DHCP (BIOS variant; the "
                                  "UEFI one takes DHCP option 26); 0 leaves it alone.")]
Rounds = Annotated[int, typer.Option(help="Passes over all NICs before giving up; 0: never.")]
Pause = Annotated[int, typer.Option(help="Seconds between passes.")]


def _build(out: Path | None, mtu: int, rounds: int, pause: int) -> list[BuiltImage]:
    options = IpxeOptions(mtu=mtu or None, rounds=rounds, pause=pause)
    return build((out or default_dir()).expanduser(), options)


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
    return typer.Exit(1)


@app.command("build")
def build_command(out: OutDir = None, mtu: Mtu = DEFAULT_MTU, rounds: Rounds = 0,
                  pause: Pause = 5) -> None:
    """Build the BIOS and UEFI iPXE disk images (offline, reproducible)."""
    try:
        images = _build(out, mtu, rounds, pause)
    except QuintupleOError as exc:
        raise _fail(exc) from None
    table = Table("firmware", "file", "size", "sha256")
    for image in images:
        table.add_row(image.firmware, str(image.path), f"{image.size // 1024} KiB", image.sha256)
    console.print(table)


@app.command("build-agent")
def build_agent_command(
    out: Annotated[Path, typer.Option("--out", help="Where ipa.kernel, ipa.initramfs and "
                                      "disk.raw go.")] = Path("agent"),
) -> None:
    """Build Ironic Python Agent's kernel and ramdisk (Debian packages and the agent from the
    Python index; cached by its inputs) and the whole-disk image to deploy (BIOS and UEFI,
    Debian's signed shim and GRUB: it boots with secure boot on too)."""
    from quintupleo.images.agent import build_agent
    from quintupleo.images.marker import whole_disk_image
    from quintupleo.images.signed import signed_chain

    try:
        with err.status("building the agent ramdisk (a few minutes the first time)") as status:
            built = build_agent(out.expanduser(),
                                log=lambda step: status.update(f"agent ramdisk: {step}"))
            disk = whole_disk_image(out.expanduser() / "disk.raw", signed=signed_chain())
    except QuintupleOError as exc:
        raise _fail(exc) from None
    table = Table("file", "size", "sha256")
    for path in (built.kernel, built.initramfs, disk):
        table.add_row(str(path), f"{path.stat().st_size // 1024} KiB", file_sha256(path))
    console.print(table)
    err.print(f"agent ramdisk {'built' if built.built else 'from the cache'} in "
              f"{built.seconds:.0f} s", highlight=False)


@app.command("upload")
def upload_command(
    cloud: Annotated[str, typer.Option(envvar="OS_CLOUD", help="clouds.yaml entry.")],
    out: OutDir = None, mtu: Mtu = DEFAULT_MTU, rounds: Rounds = 0, pause: Pause = 5,
) -> None:
    """Build the images and put them in Glance, reusing identical ones already there."""
    import openstack

    from quintupleo.images.glance import publish_ipxe
    try:
        images = _build(out, mtu, rounds, pause)
        conn = openstack.connect(cloud=cloud)
        published = [publish_ipxe(conn, image) for image in images]
    except QuintupleOError as exc:
        raise _fail(exc) from None
    except Exception as exc:   # openstacksdk's config and auth errors have no common base
        raise _fail(RuntimeError(f"cloud {cloud!r}: {exc}")) from None
    table = Table("firmware", "Glance image", "id", "")
    for image, done in zip(images, published, strict=True):
        table.add_row(image.firmware, done.name, done.id, "reused" if done.reused else "uploaded")
    console.print(table)
