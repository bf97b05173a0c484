"""Debian's signed UEFI boot chain: shim (signed by Microsoft's UEFI CA) and GRUB (signed by
Debian, checked by shim), so that a disk image boots with secure boot enforced by firmware that
holds Microsoft's keys (OVMF_VARS_4M.ms.fd, and most real machines).

Taken from the packages (`apt-get download`, unpacked, never installed: their maintainer scripts
would run grub-install on this host) and kept in the user's cache by package version."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from quintupleo.errors import ConfigError
from quintupleo.paths import cache_dir

PACKAGES = {"shim-signed": "usr/lib/shim/shimx64.efi.signed",
            "grub-efi-amd64-signed": "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"}


@dataclass(frozen=True)
class SignedChain:
    shim: Path   # goes where the firmware looks: \EFI\BOOT\BOOTX64.EFI
    grub: Path   # beside it, as shim loads it: grubx64.efi


def signed_chain() -> SignedChain:
    """The signed shim and GRUB of the Debian release this host runs (downloaded once)."""
    versions = {name: _candidate(name) for name in PACKAGES}
    cache = cache_dir("signed-efi") / "+".join(f"{n}_{v}" for n, v in sorted(versions.items()))
    if not all((cache / Path(path).name).exists() for path in PACKAGES.values()):
        cache.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="qo-signed-", dir=cache.parent) as scratch:
            work = Path(scratch)
            _apt(["apt-get", "download", "-qq", *(f"{n}={v}" for n, v in versions.items())],
                 work)
            staging = work / "out"
            staging.mkdir()
            for name, path in PACKAGES.items():
                [deb] = work.glob(f"{name}_*.deb")
                _apt(["dpkg-deb", "-x", str(deb), str(work / name)], work)
                shutil.copyfile(work / name / path, staging / Path(path).name)
            shutil.rmtree(cache, ignore_errors=True)
            staging.rename(cache)
    shim, grub = (cache / Path(path).name for path in PACKAGES.values())
    return SignedChain(shim, grub)


def _candidate(package: str) -> str:
    result = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True,
                            check=False)
    for line in result.stdout.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Candidate" and value.strip() not in ("", "(none)"):
            return value.strip()
    raise ConfigError(f"Debian's {package} is not known to apt here: run apt-get update "
                      "(scripts/setup.sh does)")


def _apt(argv: list[str], cwd: Path) -> None:
    try:
        result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False,
                                timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"{argv[0]} failed: {exc}") from None
    if result.returncode != 0:
        raise ConfigError(f"{' '.join(argv[:2])} failed: {result.stderr.strip()[-500:]}")
