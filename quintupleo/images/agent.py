"""The Ironic Python Agent ramdisk (`ipa.kernel`, `ipa.initramfs`), assembled on this machine.

A Debian userland from `mmdebstrap` (Debian's kernel and the tools the agent runs: util-linux,
parted, gdisk, qemu-img, dmidecode, lshw, efibootmgr, mdadm, fuser, …), Ironic Python Agent from the
Python index into /opt/ipa (pinned, under the devcloud's upper constraints), trimmed (docs,
locales, all kernel modules but storage, virtio, NICs and file systems) and packed as a zstd
cpio. Its /init is a shell script, not systemd: udev, DHCP on every NIC, then the agent, with
its log on the console (Ironic's kernel arguments send that to the serial port).

Why not diskimage-builder: the measured comparison is in the README (it installs the agent from
git, which this machine cannot reach, and takes longer for the same result).

Builds are cached by their inputs (this recipe, the agent's version, the constraints): the same
inputs reuse the build. The archive is reproducible from a given root (sorted, fixed times,
hash-checked bytecode); the Debian packages are whatever the mirror holds that day.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from quintupleo.errors import ConfigError
from quintupleo.paths import cache_dir

IPA_VERSION = "13.0.0"
SUITE = "bookworm"
CONSTRAINTS = Path(__file__).parents[1] / "devcloud" / "upper-constraints.txt"
HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
PACKAGES = (
    "linux-image-amd64", "python3", "udev", "kmod", "iproute2", "isc-dhcp-client",
    "util-linux", "mount", "fdisk", "parted", "gdisk", "dosfstools", "e2fsprogs", "qemu-utils",
    "dmidecode", "lshw", "efibootmgr", "mdadm", "pciutils", "procps", "psmisc", "file",
    "bsdextrautils", "util-linux-extra", "hdparm", "smartmontools", "nvme-cli",
)
# kernel modules kept (relative to /lib/modules/VERSION/kernel): what a VM's disks, NICs and the
# file systems the agent touches need; the rest (graphics, sound, wireless, …) is most of the size
MODULES = (
    "drivers/block", "drivers/virtio", "drivers/net/virtio_net.ko", "drivers/net/net_failover.ko",
    "net/core/failover.ko", "drivers/net/ethernet/intel", "drivers/ata", "drivers/scsi",
    "drivers/nvme", "drivers/md", "drivers/cdrom", "drivers/char", "drivers/firmware",
    "fs/ext4", "fs/jbd2", "fs/mbcache.ko", "fs/fat", "fs/vfat", "fs/nls", "fs/efivarfs",
    "fs/isofs", "lib", "crypto", "arch/x86/crypto", "block",
)
TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
        "usr/share/zoneinfo", "var/cache/apt", "var/lib/apt/lists", "var/cache/debconf",
        "usr/lib/x86_64-linux-gnu/gconv", "boot")
# Made at random by their packages' scripts (the rest of the build is byte-for-byte the same):
# nvme-cli's host identity, which nvme-cli derives again when absent.
RANDOM = ("etc/nvme/hostid", "etc/nvme/hostnqn")
EPOCH = 1577836800            # 2020-01-01: every file's time in the archive

INIT = """\
#!/bin/sh
# QuintupleO's agent ramdisk: no systemd. udev, DHCP on every NIC, then Ironic Python Agent,
# restarted if it exits (as its systemd unit would be).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run /tmp /var/log
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
[ -d /sys/firmware/efi ] && mount -t efivarfs efivarfs /sys/firmware/efi/efivars
exec </dev/console >/dev/console 2>&1
echo "QuintupleO agent ramdisk: udev"
/lib/systemd/systemd-udevd --daemon --resolve-names=never
udevadm trigger --type=subsystems --action=add
udevadm trigger --type=devices --action=add
udevadm settle --timeout=60
hostname ironic-python-agent
ip link set lo up
nics=$(for n in /sys/class/net/*; do [ -e "$n/device" ] && basename "$n"; done)
echo "QuintupleO agent ramdisk: DHCP on" $nics
until dhclient -1 -v $nics; do sleep 2; done
echo "QuintupleO agent ramdisk: Ironic Python Agent"
while true; do
    PYTHONPATH=/opt/ipa python3 -c \\
        'import sys; from ironic_python_agent.cmd.agent import run; sys.exit(run())'
    echo "QuintupleO agent ramdisk: the agent exited ($?); restarting"
    sleep 5
done
"""


# Debian's poweroff and reboot are systemctl, which refuses without systemd as PID 1: the
# agent's power_off then failed and Ironic waited 30 s before a hard power off, while the node
# still ran (and could reboot into the disk just written). These answer at once, as systemd's
# do, and the kernel powers off (ACPI: QEMU ends) or resets a moment later.
SHUTDOWN = """\
#!/bin/sh
# QuintupleO's agent ramdisk: {command} without systemd
sync
(sleep 2; sync; echo {key} > /proc/sysrq-trigger) >/dev/null 2>&1 &
exit 0
"""


@dataclass(frozen=True)
class AgentRamdisk:
    kernel: Path
    initramfs: Path
    built: bool            # False: the cache had it
    seconds: float


def recipe_digest() -> str:
    """What the build depends on (this recipe and the constraints): a change builds afresh."""
    parts = [Path(__file__).read_bytes(), CONSTRAINTS.read_bytes()]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]


def build_agent(out: Path, log: Callable[[str], None] | None = None) -> AgentRamdisk:
    """DIR/ipa.kernel and DIR/ipa.initramfs, from the cache when its inputs are unchanged."""
    started = time.monotonic()
    cached = cache_dir("agent") / recipe_digest()
    built = not (cached / "ipa.initramfs").exists()
    if built:
        _check_tools()
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="qo-agent-", dir=cached.parent) as work:
            staging = Path(work) / "out"
            staging.mkdir()
            _assemble(Path(work) / "root", staging, log or (lambda _: None))
            for stale in cached.parent.iterdir():       # one build kept: they are large
                if stale.name != Path(work).name:
                    shutil.rmtree(stale, ignore_errors=True)
            staging.rename(cached)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("ipa.kernel", "ipa.initramfs"):
        target = out / name
        if target.exists() and target.stat().st_ino == (cached / name).stat().st_ino:
            continue
        target.unlink(missing_ok=True)
        try:
            os.link(cached / name, target)
        except OSError:                                 # another file system
            shutil.copyfile(cached / name, target)
    return AgentRamdisk(out / "ipa.kernel", out / "ipa.initramfs", built,
                        time.monotonic() - started)


def _check_tools() -> None:
    if os.geteuid() != 0:
        raise ConfigError("building the agent ramdisk needs root (mmdebstrap's chroot)")
    for tool, package in (("mmdebstrap", "mmdebstrap"), ("zstd", "zstd"), ("cpio", "cpio")):
        if shutil.which(tool) is None:
            raise ConfigError(f"{tool} is missing: apt-get install {package} "
                              "(scripts/setup.sh installs it)")


def _assemble(root: Path, out: Path, log: Callable[[str], None]) -> None:
    # INITRD=No: the kernel package's hook makes no initramfs of its own (this is one)
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH), "DEBIAN_FRONTEND": "noninteractive",
           "INITRD": "No"}
    log(f"Debian {SUITE} userland (mmdebstrap)")
    mirror = [str(HOST_SOURCES)] if HOST_SOURCES.exists() else []
    _run(["mmdebstrap", "--variant=apt", "--mode=root", "--quiet",
          "--aptopt=APT::Install-Recommends \"false\"",
          *[f"--dpkgopt=path-exclude=/{path}/*" for path in TRIM[:4]],
          f"--include={','.join(PACKAGES)}", SUITE, str(root), *mirror], env)
    log(f"Ironic Python Agent {IPA_VERSION} (pip)")
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          "--no-warn-script-location", "--target", str(root / "opt" / "ipa"),
          f"ironic-python-agent=={IPA_VERSION}", "-c", str(CONSTRAINTS)], env)
    # bytecode made by the ramdisk's own Python, checked by hash: the agent starts faster under
    # TCG, and the files do not depend on when they were built
    _run(["chroot", str(root), "python3", "-m", "compileall", "-q", "-j0",
          "--invalidation-mode", "checked-hash", "/opt/ipa", "/usr/lib/python3",
          "/usr/lib/python3.11"], env,
         ok=(0, 1))
    log("trim, kernel, /init")
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise ConfigError("the Debian root has no kernel")
    shutil.copyfile(kernels[-1], out / "ipa.kernel")
    _trim(root, kernels[-1].name.removeprefix("vmlinuz-"), env)
    (root / "init").write_text(INIT)
    (root / "init").chmod(0o755)
    for command, key in (("poweroff", "o"), ("reboot", "b")):   # what the agent runs
        script = root / "usr" / "local" / "sbin" / command
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(SHUTDOWN.format(command=command, key=key))
        script.chmod(0o755)
    log("archive (cpio, zstd)")
    archive(root, out / "ipa.initramfs")


def _trim(root: Path, version: str, env: dict[str, str]) -> None:
    for path in TRIM:
        shutil.rmtree(root / path, ignore_errors=True)
    for made_at_random in RANDOM:
        (root / made_at_random).unlink(missing_ok=True)
    modules = root / "lib" / "modules" / version
    kept = modules / "kernel.kept"
    for part in MODULES:
        source = modules / "kernel" / part
        if source.exists():
            (kept / part).parent.mkdir(parents=True, exist_ok=True)
            source.rename(kept / part)
    shutil.rmtree(modules / "kernel")
    kept.rename(modules / "kernel")
    _run(["chroot", str(root), "depmod", version], env)    # the ramdisk's own kmod
    for cache in root.rglob("__pycache__"):             # the host's pip made some for its Python
        for stale in cache.glob("*.pyc"):
            if ".cpython-311." not in stale.name:
                stale.unlink()


def archive(root: Path, target: Path) -> None:
    """ROOT as a newc cpio, zstd-compressed: sorted names, every time EPOCH, owners root."""
    for path in [root, *root.rglob("*")]:
        os.utime(path, (EPOCH, EPOCH), follow_symlinks=False)
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    partial = target.with_suffix(".partial")
    with partial.open("wb") as sink:
        cpio = subprocess.Popen(["cpio", "--quiet", "-o", "-H", "newc", "--reproducible",
                                 "-R", "0:0"], cwd=root, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)
        zstd = subprocess.Popen(["zstd", "-q", "-T0", "-12", "-c"], stdin=cpio.stdout,
                                stdout=sink)
        assert cpio.stdin is not None and cpio.stdout is not None
        cpio.stdout.close()
        cpio.stdin.write("\n".join(names).encode() + b"\n")
        cpio.stdin.close()
        if cpio.wait() != 0 or zstd.wait() != 0:
            raise ConfigError("packing the agent ramdisk failed (cpio | zstd)")
    partial.rename(target)


def _run(argv: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if result.returncode not in ok:
        raise ConfigError(f"{argv[0]} failed ({result.returncode}): "
                          f"{(result.stderr or result.stdout).strip()[-1500:]}")
