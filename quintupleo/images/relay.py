"""The relay host's image for routed provisioning, assembled here from Debian's packages: no
cloud image to download.

Debian's kernel (its package unpacked, not installed) direct-boots an initramfs of
busybox-static and this machine's dnsmasq (with the libraries it links), the kernel modules of a
VM's virtio NIC and of the CD-ROM a config drive is. Its /init mounts the config drive and runs
the user data (environments/relay.py writes it: addresses, forwarding, dnsmasq's DHCP relay);
it logs to the serial console and stays up. In Glance: a kernel (aki), a ramdisk (ari) and a
small root image naming both, which Nova's libvirt driver boots directly.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from quintupleo.errors import ConfigError
from quintupleo.images.cpio import Entry, newc
from quintupleo.paths import cache_dir

BUSYBOX = Path("/bin/busybox")
DNSMASQ = Path("/usr/sbin/dnsmasq")
# What the relay loads, by module name; their dependencies come from the kernel's modules.dep.
# A config drive is a CD-ROM: on IDE (pc machines) or SATA (q35, Nova's default since 2023.1).
MODULES = ("virtio_pci", "virtio_net", "ata_piix", "ahci", "sr_mod", "isofs")
COMMAND_LINE = "console=ttyS0 panic=-1"
INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for module in $(cat /lib/modules/order); do insmod "/lib/modules/$module"; done
echo "QuintupleO relay image: looking for the config drive"
for try in 1 2 3 4 5 6 7 8 9 10; do
  for dev in /dev/sr0 /dev/sr1 /dev/vdb /dev/sda; do
    [ -b "$dev" ] && mount -t iso9660 -o ro "$dev" /mnt 2>/dev/null && break 2
  done
  sleep 1
done
if [ -f /mnt/openstack/latest/user_data ]; then
  sh /mnt/openstack/latest/user_data || echo "QuintupleO relay image: the user data failed"
else
  echo "QuintupleO relay image: no config drive with user data (boot it with --config-drive)"
fi
while true; do sleep 3600; done
"""


@dataclass(frozen=True)
class RelayImage:
    kernel: Path
    ramdisk: Path
    root: Path          # a small raw disk naming this build (Glance reuses it by content)


def build_relay(out: Path | None = None) -> RelayImage:
    """The relay's kernel and ramdisk, built once per kernel package and dnsmasq binary."""
    for path, package in ((BUSYBOX, "busybox-static"), (DNSMASQ, "dnsmasq-base")):
        if not path.exists():
            raise ConfigError(f"the relay image needs {path}: apt-get install {package}")
    out = out or cache_dir("relay")
    tree = kernel_tree(out / "kernel")
    kernel = next((tree / "boot").glob("vmlinuz-*"))
    order = module_order(tree, MODULES)
    files: list[tuple[str, int, bytes]] = [
        ("init", 0o755, INIT.encode()),
        ("bin/busybox", 0o755, BUSYBOX.read_bytes()),
        ("usr/sbin/dnsmasq", 0o755, DNSMASQ.read_bytes()),
        ("etc/passwd", 0o644, b"root:x:0:0:root:/:/bin/sh\n"),
        ("etc/group", 0o644, b"root:x:0:\n"),
        ("lib/modules/order", 0o644, "\n".join(Path(m).name for m in order).encode() + b"\n"),
        *((f"lib/modules/{Path(m).name}", 0o644, (tree / m).read_bytes()) for m in order),
        *((str(lib).lstrip("/"), 0o755, lib.read_bytes()) for lib in libraries(DNSMASQ)),
    ]
    directories = {str(Path(name).parent) for name, _, _ in files} - {"."} | {
        "proc", "sys", "dev", "mnt", "tmp", "var/run", "var/lib/misc"}
    entries: list[Entry] = [(d, 0o040755, b"", (0, 0)) for d in _with_parents(directories)]
    entries += [(name, 0o100000 | mode, data, (0, 0)) for name, mode, data in files]
    ramdisk = gzip.compress(newc([*entries, ("dev/console", 0o020600, b"", (5, 1))]), mtime=0)
    digest = hashlib.sha256(kernel.read_bytes() + ramdisk).hexdigest()
    built = out / digest[:16]
    if not (built / "root.img").exists():
        built.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kernel, built / "vmlinuz")
        (built / "initrd").write_bytes(ramdisk)
        # the root disk boots nothing; its bytes name the build so each build has its own
        (built / "root.img").write_bytes(f"quintupleo relay {digest}\n".encode()
                                         .ljust(65536, b"\0"))
    return RelayImage(built / "vmlinuz", built / "initrd", built / "root.img")


def kernel_tree(where: Path) -> Path:
    """Debian's current kernel package, unpacked under `where` (once)."""
    package = _kernel_package()
    tree = where / package
    if (tree / "boot").is_dir():
        return tree
    with tempfile.TemporaryDirectory(prefix="qo-kernel-") as tmp:
        download = _run(["apt-get", "download", "-qq", package], Path(tmp))
        if download.returncode != 0:
            _run(["apt-get", "update", "-qq"], Path(tmp))
            if _run(["apt-get", "download", "-qq", package], Path(tmp)).returncode != 0:
                raise ConfigError(f"cannot download Debian's {package}: {download.stderr}")
        deb = next(Path(tmp).glob("*.deb"))
        partial = where / f"{package}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        unpack = subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], capture_output=True,
                                text=True, check=False)
        if unpack.returncode != 0:
            raise ConfigError(f"cannot unpack {deb.name}: {unpack.stderr.strip()}")
        partial.rename(tree)
    return tree


def module_order(tree: Path, names: tuple[str, ...]) -> list[str]:
    """The modules `names` and what they depend on, dependencies first (paths in `tree`). The
    package has no modules.dep (depmod makes it at install): each module's `depends=` tag says."""
    base = next((tree / "lib" / "modules").iterdir())
    by_name = {_module_name(path): path for path in base.rglob("*.ko")}
    order: list[Path] = []

    def visit(name: str) -> None:
        path = by_name[name]
        for need in _depends(path):
            visit(need)
        if path not in order:
            order.append(path)
    for name in names:
        if name in by_name:    # else built into this kernel: nothing to load
            visit(name)
    return [str(path.relative_to(tree)) for path in order]


def _module_name(path: Path) -> str:
    return path.name.removesuffix(".ko").replace("-", "_")


def _depends(module: Path) -> list[str]:
    """The `depends=` tag of a module's .modinfo section (NUL-separated key=value strings)."""
    data = module.read_bytes()
    start = data.find(b"\0depends=")
    if start < 0:
        return []
    value = data[start + 9:data.index(b"\0", start + 1)].decode()
    return [name.replace("-", "_") for name in value.split(",") if name]


def libraries(binary: Path) -> list[Path]:
    """The shared libraries `binary` loads (with the dynamic loader), as ldd lists them."""
    listed = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True)
    found = []
    for line in listed.stdout.splitlines():
        path = line.split("=>")[-1].split("(")[0].strip()
        if path.startswith("/"):
            found.append(Path(path))
    return found


def _with_parents(directories: set[str]) -> list[str]:
    every = set()
    for directory in directories:
        path = Path(directory)
        every |= {str(p) for p in [path, *path.parents] if str(p) != "."}
    return sorted(every, key=lambda d: (d.count("/"), d))


def _kernel_package() -> str:
    for attempt in range(2):
        shown = subprocess.run(["apt-cache", "depends", "linux-image-amd64"],
                               capture_output=True, text=True, check=False).stdout
        for line in shown.splitlines():
            if "Depends: linux-image-" in line and line.split()[-1][12:13].isdigit():
                return line.split()[-1]
        if attempt == 0:
            _run(["apt-get", "update", "-qq"], Path("/"))
    raise ConfigError("no Debian kernel package (linux-image-amd64) known to apt")


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False,
                          timeout=600)
