"""`quintupleo image build | upload`: the iPXE network-boot images the PXE strategies use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from quintupleo.cli import output
from quintupleo.cli.output import Format, FormatOption
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
err = output.stderr()
FILE_COLUMNS = ("firmware", "file", "size", "sha256")


OutDir = Annotated[Path | None, typer.Option("--output", "-o", help="Where the images go "
                                             "[default: ~/.local/state/quintupleo/images].")]
Mtu = Annotated[int, typer.Option(help="MTU set on each NIC before DHCP (BIOS variant; the "
                                  "UEFI one takes DHCP option 26); 0 leaves it alone.")]
Rounds = Annotated[int, typer.Option(help="Passes over all NICs before giving up; 0: never.")]
Pause = Annotated[int, typer.Option(help="Seconds between passes.")]


def _build(out: Path | None, mtu: int, rounds: int, pause: int) -> list[BuiltImage]:
    options = IpxeOptions(mtu=mtu or None, rounds=rounds, pause=pause)
    return build((out or default_dir()).expanduser(), options)


def _fail(exc: Exception) -> typer.Exit:
    return output.fail(exc)


@app.command("build")
def build_command(out: OutDir = None, mtu: Mtu = DEFAULT_MTU, rounds: Rounds = 0,
                  pause: Pause = 5, format: FormatOption = Format.table) -> None:
    """Build the BIOS and UEFI iPXE disk images (offline, reproducible)."""
    try:
        images = _build(out, mtu, rounds, pause)
    except QuintupleOError as exc:
        raise _fail(exc) from None
    output.emit([{"firmware": i.firmware, "file": str(i.path), "size": i.size,
                  "sha256": i.sha256} for i in images], FILE_COLUMNS, format)


@app.command("build-agent")
def build_agent_command(
    out: Annotated[Path, typer.Option("--output", "-o", help="Where ipa.kernel, ipa.initramfs "
                                      "and disk.raw go.")] = Path("agent"),
    format: FormatOption = Format.table,
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
    output.emit([{"file": str(path), "size": path.stat().st_size, "sha256": file_sha256(path)}
                 for path in (built.kernel, built.initramfs, disk)],
                ("file", "size", "sha256"), format)
    err.print(f"agent ramdisk {'built' if built.built else 'from the cache'} in "
              f"{built.seconds:.0f} s", highlight=False)


@app.command("upload")
def upload_command(
    cloud: Annotated[str, typer.Option(envvar="OS_CLOUD", help="clouds.yaml entry.")],
    out: OutDir = None, mtu: Mtu = DEFAULT_MTU, rounds: Rounds = 0, pause: Pause = 5,
    format: FormatOption = Format.table,
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
    output.emit([{"firmware": image.firmware, "image": done.name, "id": done.id,
                  "action": "reused" if done.reused else "uploaded"}
                 for image, done in zip(images, published, strict=True)],
                ("firmware", "image", "id", "action"), format)
