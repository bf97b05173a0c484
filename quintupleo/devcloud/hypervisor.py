"""The real host's hypervisor: libvirtd and virtlogd run by hand, their files in the data dir.

A root libvirtd reads and writes fixed system paths (/etc/libvirt, /var/lib/libvirt, /run/libvirt,
…). Ours runs in a mount namespace of its own, where the data dir's `libvirt/` folders are bound
over those paths, and in a UTS namespace whose host name is the compute host's (the libvirt driver
names its node after libvirt's host name). virtlogd joins the same namespaces; QEMU inherits them.
Outside the data dir only the empty mount points are made (and removed again by `down` when we
made them), and the system account libvirtd insists on (`libvirt-qemu`, as Debian's package
makes it; QEMU itself runs as root).

A domain's QEMU outlives libvirtd (libvirt daemonizes it), so `down` ends the QEMUs of this
cloud by their command line (their disks are in this data dir), also after a kill -9 of all.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shlex
import shutil
import subprocess
from pathlib import Path

import psutil

from quintupleo.devcloud.layout import Layout
from quintupleo.devcloud.plugins.names import REAL_HOST
from quintupleo.reaping import wait_gone

# genisoimage: Nova's config drives (the relay host of routed environments reads its user data
# from one)
APT_PACKAGES = ("libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-clients", "libvirt-dev",
                "pkg-config", "nftables", "qemu-system-x86", "qemu-utils", "ipxe-qemu",
                "genisoimage")
ACCOUNT = "libvirt-qemu"


def binds(layout: Layout) -> dict[Path, Path]:
    """Our folder: the system path it is bound over, in libvirtd's mount namespace."""
    lv = layout.libvirt
    return {
        layout.etc / "libvirt": Path("/etc/libvirt"),
        lv / "lib": Path("/var/lib/libvirt"),
        lv / "cache": Path("/var/cache/libvirt"),
        lv / "log": Path("/var/log/libvirt"),
        lv / "run": Path("/run/libvirt"),
    }


def _made_file(layout: Layout) -> Path:
    return layout.libvirt / "made-mount-points.json"


def prepare(layout: Layout) -> None:
    """Our folders, and the mount points that are missing (recorded, so `down` removes them)."""
    made_file = _made_file(layout)
    made = set(json.loads(made_file.read_text())) if made_file.exists() else set()
    for ours, system in binds(layout).items():
        ours.mkdir(parents=True, exist_ok=True)
        if not system.exists():
            system.mkdir(parents=True)
            made.add(str(system))
    made_file.write_text(json.dumps(sorted(made)))
    (layout.data / "nova-qemu" / "instances").mkdir(parents=True, exist_ok=True)


def launcher(layout: Layout) -> list[str]:
    """libvirtd's command: new mount and UTS namespaces, the binds, the host name, then exec."""
    mounts = "; ".join(f"mount --bind {shlex.quote(str(ours))} {system}"
                       for ours, system in binds(layout).items())
    libvirtd = shlex.join(["libvirtd", "-f", str(layout.etc / "libvirt" / "libvirtd.conf"),
                           "-p", str(layout.libvirt / "run" / "libvirtd.pid")])
    script = f"set -e; {mounts}; hostname {REAL_HOST}; exec {libvirtd}"
    return ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script]


def virtlogd(layout: Layout) -> list[str]:
    return ["virtlogd", "-f", str(layout.etc / "libvirt" / "virtlogd.conf"),
            "-p", str(layout.libvirt / "run" / "virtlogd.pid")]


def join_namespaces(pid: int, argv: list[str]) -> list[str]:
    return ["nsenter", f"--target={pid}", "--mount", "--uts", "--", *argv]


def why_not() -> str | None:
    """Why this machine cannot run the real host, or None."""
    if os.geteuid() != 0:
        return "the real host (zone qemu) needs root: libvirtd, taps and bridges"
    for program in ("unshare", "nsenter", "ip"):
        if shutil.which(program) is None:
            return f"the real host needs {program}, which is not installed"
    if not Path("/dev/net/tun").exists():
        return "the real host needs /dev/net/tun for its VMs' taps"
    return None


def ensure_account() -> None:
    """libvirtd resolves its built-in QEMU user before it reads qemu.conf: it must exist."""
    try:
        pwd.getpwnam(ACCOUNT)
        return
    except KeyError:
        pass
    subprocess.run(["groupadd", "-rf", "kvm"], check=True, capture_output=True)
    subprocess.run(["groupadd", "-rf", ACCOUNT], check=True, capture_output=True)
    subprocess.run(["useradd", "-r", "-g", ACCOUNT, "-G", "kvm", "-d", "/var/lib/libvirt",
                    "-s", "/usr/sbin/nologin", ACCOUNT], check=True, capture_output=True)


def our_qemus(layout: Layout) -> list[psutil.Process]:
    """QEMU processes whose command line names a file of this cloud's real host."""
    marker = str(layout.data / "nova-qemu")
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if (proc.info["name"] or "").startswith("qemu-system") and \
                    marker in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
    return found


def stop_qemus(layout: Layout) -> int:
    """Power off every VM of this cloud at once (a dev cloud's pulled plug); how many ran."""
    qemus = our_qemus(layout)
    for proc in qemus:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    wait_gone(qemus, 10.0)
    return len(qemus)


def clear(layout: Layout) -> None:
    """After every process is gone: what only lives while libvirtd runs (as /run after a boot),
    and the mount points we made."""
    shutil.rmtree(layout.libvirt / "run", ignore_errors=True)
    made_file = _made_file(layout)
    if made_file.exists():
        for system in json.loads(made_file.read_text()):
            with contextlib.suppress(OSError):
                Path(system).rmdir()   # only when empty: never what someone else put there
        made_file.unlink()
