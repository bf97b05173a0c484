"""Install what the local cloud runs: Debian's RabbitMQ and a venv of the OpenStack services;
for the real host also Debian's libvirt, QEMU and nftables, and libvirt's Python binding.

Versions are pinned by OpenStack's upper constraints for the 2026.2 series, shipped with this
package; the services' venv is built once and reused (a marker file records what was installed).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from importlib import resources
from pathlib import Path

from quintupleo.devcloud.layout import Layout
from quintupleo.errors import DevcloudError

APT_PACKAGES = ("rabbitmq-server",)
SERVICE_PACKAGES = (
    "keystone==30.0.0",
    "openstack-placement==16.0.0",
    "nova==34.0.0",
    "glance==33.0.0",
    "neutron==29.0.0",
    # neutron imports pyroute2 without declaring it; the APIs run under uWSGI.
    "pyroute2",
    "python-memcached",
    "uwsgi",
    "python-openstackclient",
    "setuptools>=70.1",  # builds our plugins without the separate wheel package
)
PLUGIN_DIST = "quintupleo-devcloud-plugins"
PLUGIN_MARKER = ".quintupleo-plugins"
PLUGIN_PYPROJECT = f"""\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "{PLUGIN_DIST}"
version = "1"

[project.entry-points."neutron.ml2.mechanism_drivers"]
quintupleo_agentless = "quintupleo_devcloud_plugins.agentless_ml2:AgentlessMechanismDriver"
"""
MARKER = ".quintupleo-installed"


def _run(argv: list[str], what: str, log: Path, env: dict[str, str] | None = None) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(argv)}\n")
        out.flush()
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode != 0:
        raise DevcloudError(f"{what} failed (exit {result.returncode})", service="install", log=log)


def missing_apt_packages(extra: tuple[str, ...] = ()) -> list[str]:
    """Debian packages still to install; none known where there is no dpkg to ask."""
    if shutil.which("dpkg-query") is None:
        return []
    return [name for name in (*APT_PACKAGES, *extra) if not _dpkg_installed(name)]


def _dpkg_installed(name: str) -> bool:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name],
                            capture_output=True, text=True, check=False)
    return result.returncode == 0 and "install ok installed" in result.stdout


def install_apt_packages(layout: Layout, extra: tuple[str, ...] = ()) -> None:
    """Install RabbitMQ (and EXTRA) without letting Debian start or enable a service of theirs:
    we start what we run by hand."""
    missing = missing_apt_packages(extra)
    if not missing:
        return
    if os.geteuid() != 0:
        raise DevcloudError(
            f"missing Debian packages: {', '.join(missing)}",
            hint=f"Install them as root: apt-get install -y {' '.join(missing)}",
        )
    log = layout.log("install")
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        if own_policy:  # deny service starts during the install (exit 101 = action forbidden)
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
        _run(["apt-get", "update", "-qq"], "apt-get update", log, env)
        _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
             f"apt-get install {' '.join(missing)}", log, env)
    finally:
        if own_policy:
            policy.unlink(missing_ok=True)
    # The package enables its system service; we never run it, so switch that off again.
    for name in missing:
        if shutil.which("deb-systemd-helper"):
            subprocess.run(["deb-systemd-helper", "disable", f"{name}.service"],
                           capture_output=True, check=False)
        if shutil.which("update-rc.d"):
            subprocess.run(["update-rc.d", name, "disable"], capture_output=True, check=False)


def constraints_file() -> Path:
    return Path(str(resources.files("quintupleo.devcloud") / "upper-constraints.txt"))


def _install_plugins(layout: Layout, pip: list[str], log: Path) -> None:
    """Install our ML2 driver, SQLite hook and virt drivers into the services' venv."""
    build = layout.home / "build" / "plugins"
    shutil.rmtree(build, ignore_errors=True)
    source = Path(str(resources.files("quintupleo.devcloud.plugins")))
    shutil.copytree(source, build / "quintupleo_devcloud_plugins",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (build / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    _run([*pip, "install", "--no-deps", "--no-build-isolation", "--force-reinstall", str(build)],
         "installing the QuintupleO plugins into the services' venv", log)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(layout.venv),
                                                   "platbase": str(layout.venv)}))
    (site / "quintupleo_devcloud_plugins.pth").write_text(
        "import quintupleo_devcloud_plugins.sqlite_locking\n")
    # Nova loads compute drivers from nova.virt.* only: a one-line module there names ours.
    (site / "nova" / "virt" / "quintupleo_recording.py").write_text(
        "from quintupleo_devcloud_plugins.recording_virt import RecordingFakeDriver  # noqa\n")
    (site / "nova" / "virt" / "quintupleo_libvirt.py").write_text(
        "from quintupleo_devcloud_plugins.libvirt_compat import LibvirtDriver  # noqa\n")


def _plugins_fingerprint() -> str:
    source = Path(str(resources.files("quintupleo.devcloud.plugins")))
    code = b"".join(path.read_bytes() for path in sorted(source.glob("*.py")))
    return hashlib.sha256(code).hexdigest()


def _fingerprint() -> str:
    return "\n".join([*SERVICE_PACKAGES, constraints_file().read_text()])


# A venv whose marker is current but which lost one of these is repaired by the next install.
KEY_PROGRAMS = ("python", "uwsgi", "keystone-manage", "nova-compute", "neutron-db-manage",
                "glance-manage", "placement-manage", "openstack")


def venv_is_current(layout: Layout) -> bool:
    marker = layout.venv / MARKER
    return (marker.exists() and marker.read_text() == _fingerprint()
            and all(layout.bin(name).exists() for name in KEY_PROGRAMS))


LIBVIRT_MARKER = ".quintupleo-libvirt"


def install_venv(layout: Layout, libvirt: bool = False) -> None:
    """Build (or complete) the services' venv; a no-op when it is already current. Our plugins
    are reinstalled whenever their source changed (restart the services to load them). With
    `libvirt`, also libvirt's Python binding (built against Debian's libvirt-dev)."""
    log = layout.log("install")
    pip = [str(layout.venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    plugins = layout.venv / PLUGIN_MARKER
    if not venv_is_current(layout):
        if not (layout.venv / "bin" / "python").exists():
            _run([sys.executable, "-m", "venv", str(layout.venv)], "creating the services' venv",
                 log)
        _run([*pip, "install", "-q", "-c", str(constraints_file()), *SERVICE_PACKAGES],
             "installing the OpenStack services (pip)", log)
        plugins.unlink(missing_ok=True)
        (layout.venv / LIBVIRT_MARKER).unlink(missing_ok=True)
        (layout.venv / MARKER).write_text(_fingerprint())
    if not plugins.exists() or plugins.read_text() != _plugins_fingerprint():
        _install_plugins(layout, pip, log)
        plugins.write_text(_plugins_fingerprint())
    marker = layout.venv / LIBVIRT_MARKER
    if libvirt and not marker.exists():
        _run([*pip, "install", "-q", "-c", str(constraints_file()), "libvirt-python"],
             "installing libvirt-python into the services' venv", log)
        marker.write_text("libvirt-python\n")
