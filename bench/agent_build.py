"""Benchmark (root): the agent ramdisk `qo image build-agent` assembles beside the one
diskimage-builder makes (`debian-minimal ironic-python-agent-ramdisk`, what Ironic's docs
use), with the same Ironic Python Agent and constraints: build time, size, and the time from
QEMU's start (TCG) to the agent's start on the serial console, at our nodes' 2 GiB and at 3 GiB.

    python bench/agent_build.py

diskimage-builder and ironic-python-agent-builder go into a venv under ~/.cache/quintupleo/bench
(debootstrap and sudo from Debian). Nothing is cloned from opendev.org here: the agent, the
requirements repository and glean come from their PyPI sdists as local git repositories
(`DIB_REPOLOCATION_*`), and an element of this script copies the host's extra CAs into the
chroot (pip there must trust what the host's pip trusts). Ours is built cold into a cache of
its own. One VM at a time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BENCH_CACHE, PY, print_table, venv_with

sys.path.insert(0, str(Path(__file__).parents[1]))
from quintupleo.images.agent import CONSTRAINTS, IPA_VERSION

DIB = ("diskimage-builder==3.43.0", "ironic-python-agent-builder==7.4.0")
SDISTS = {"ironic_python_agent": f"ironic-python-agent=={IPA_VERSION}", "glean": "glean==1.25.1"}
OURS_STARTED = "QuintupleO agent ramdisk: Ironic Python Agent"
DIB_STARTED = r"Starting .*ironic-python-age"
HOST_CA = {  # an element: the host's extra CAs, trusted in the chroot before pip runs there
    "element-deps": "package-installs\n",
    "package-installs.yaml": "ca-certificates:\n",
    "extra-data.d/10-host-ca": "#!/bin/bash\nset -eu\nmkdir -p $TMP_HOOKS_PATH/host-ca\n"
                               "cp /usr/local/share/ca-certificates/*.crt $TMP_HOOKS_PATH/host-ca/"
                               " 2>/dev/null || true\n",
    "install.d/05-host-ca": "#!/bin/bash\nset -eu\nmkdir -p /usr/local/share/ca-certificates\n"
                            "cp /tmp/in_target.d/host-ca/*.crt /usr/local/share/ca-certificates/"
                            " 2>/dev/null || true\nupdate-ca-certificates\n",
}


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("run as root: both builds chroot")
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp_name:
        tmp = Path(tmp_name)
        ours, ours_seconds = build_ours(tmp)
        dib, dib_seconds = build_dib(tmp)
        rows = [("build", f"{ours_seconds:.0f} s (cold)", f"{dib_seconds:.0f} s",
                 f"{dib_seconds / ours_seconds:.1f}x"),
                ("initramfs", mb(ours / "ipa.initramfs"), mb(dib / "ipa.initramfs"),
                 f"{size(dib) / size(ours):.1f}x")]
        for memory in (2048, 3072):
            mine = boot(ours, memory, OURS_STARTED, tmp)
            theirs = boot(dib, memory, DIB_STARTED, tmp)
            rows.append((f"boot to the agent, {memory // 1024} GiB", seconds(mine),
                         seconds(theirs), f"{theirs / mine:.1f}x" if mine and theirs else "—"))
    print_table(f"Agent ramdisk (Ironic Python Agent {IPA_VERSION}, Debian bookworm, TCG)",
                "diskimage-builder", rows, ("figure", "qo image build-agent",
                                            "diskimage-builder", "ratio"))


def build_ours(tmp: Path) -> tuple[Path, float]:
    started = time.monotonic()
    subprocess.run([PY, "-m", "quintupleo", "image", "build-agent", "--output", str(tmp / "ours")],
                   check=True, capture_output=True,
                   env=dict(os.environ, XDG_CACHE_HOME=str(tmp / "cache")))
    return tmp / "ours", time.monotonic() - started


def build_dib(tmp: Path) -> tuple[Path, float]:
    for tool, package in (("debootstrap", "debootstrap"), ("sudo", "sudo")):
        if shutil.which(tool) is None:
            subprocess.run(["apt-get", "install", "-y", "-q", package], check=True,
                           capture_output=True)
    python = venv_with("dib", *DIB)
    env = dict(os.environ, PATH=f"{python.parent}:{os.environ['PATH']}",
               DIB_RELEASE="bookworm", DIB_DEBIAN_COMPONENTS="main",
               DIB_DISTRIBUTION_MIRROR="http://deb.debian.org/debian",
               DIB_DEBIAN_SECURITY_MIRROR="http://deb.debian.org/debian-security",
               DIB_NO_TMPFS="1", TMPDIR=str(tmp), DIB_PYTHON_EXEC=str(python),
               DIB_IMAGE_CACHE=str(BENCH_CACHE / "dib-cache"),
               ELEMENTS_PATH=f"{python.parents[1]}/share/ironic-python-agent-builder/dib:"
                             f"{elements(tmp)}")
    for name, requirement in SDISTS.items():
        repo = git_from_sdist(tmp, requirement)
        env[f"DIB_REPOLOCATION_{name}"], env[f"DIB_REPOREF_{name}"] = str(repo), "master"
    requirements = tmp / "requirements"
    requirements.mkdir()
    shutil.copy(CONSTRAINTS, requirements / "upper-constraints.txt")
    git_commit(requirements)
    env["DIB_REPOLOCATION_requirements"], env["DIB_REPOREF_requirements"] = \
        str(requirements), "master"
    out = tmp / "dib"
    out.mkdir()
    started = time.monotonic()
    result = subprocess.run(["disk-image-create", "-o", str(out / "ipa"), "debian-minimal",
                             "host-ca", "ironic-python-agent-ramdisk"], env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"diskimage-builder failed:\n{result.stdout[-3000:]}")
    return out, time.monotonic() - started


def elements(tmp: Path) -> Path:
    root = tmp / "elements"
    for name, text in HOST_CA.items():
        path = root / "host-ca" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
    return root


def git_from_sdist(tmp: Path, requirement: str) -> Path:
    sdists = tmp / "sdists"
    subprocess.run([PY, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                    requirement, "-d", str(sdists)], check=True, capture_output=True)
    name = requirement.split("==")[0].replace("-", "_")
    archive = next(sdists.glob(f"{name}-*.tar.gz"))
    repo = tmp / f"{name}-git"
    repo.mkdir()
    subprocess.run(["tar", "xzf", str(archive), "-C", str(repo), "--strip-components=1"],
                   check=True)
    git_commit(repo)
    return repo


def git_commit(repo: Path) -> None:
    for argv in (["init", "-q", "-b", "master"], ["add", "-A"],
                 ["-c", "user.email=bench@localhost", "-c", "user.name=bench", "commit", "-qm",
                  "from the sdist"]):
        subprocess.run(["git", *argv], cwd=repo, check=True, capture_output=True)


def boot(ramdisk: Path, memory: int, started: str, tmp: Path, timeout: float = 300) -> float:
    """Seconds from QEMU's start to STARTED on the serial console; 0 if it never comes."""
    log = tmp / f"serial-{ramdisk.name}-{memory}.log"
    log.touch()
    qemu = subprocess.Popen(["qemu-system-x86_64", "-accel", "tcg", "-m", str(memory),
                             "-kernel", str(ramdisk / "ipa.kernel"),
                             "-initrd", str(ramdisk / "ipa.initramfs"),
                             "-append", "console=ttyS0,115200n8 panic=-1", "-display", "none",
                             "-serial", f"file:{log}", "-nic", "user,model=virtio-net-pci",
                             "-no-reboot"])
    begin = time.monotonic()
    try:
        while time.monotonic() - begin < timeout and qemu.poll() is None:
            if re.search(started, log.read_text(errors="replace")):
                return time.monotonic() - begin
            time.sleep(0.5)
        return 0.0
    finally:
        qemu.kill()
        qemu.wait()


def size(ramdisk: Path) -> int:
    return (ramdisk / "ipa.initramfs").stat().st_size


def mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.0f} MB"


def seconds(value: float) -> str:
    return f"{value:.1f} s" if value else "never (kernel panic or timeout)"


if __name__ == "__main__":
    main()
