#!/usr/bin/env bash
# Prepare a fresh Debian machine (as root) for QuintupleO: the Debian packages it needs and a
# venv (.venv) with QuintupleO and its test tools. The local cloud installs its own venv on
# `quintupleo devcloud up`. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "QuintupleO needs Python >= 3.11"'

# Debian packages for QuintupleO itself and its tests (the devcloud adds RabbitMQ itself):
# ipmitool is the reference IPMI client our BMC is tested with, FreeIPMI (freeipmi-tools) the
# second; ipxe, syslinux, mtools,
# dosfstools and grub-efi-amd64-bin build the iPXE boot images; qemu and ovmf boot them in tests,
# xorriso makes the tests' CD images; the lab's nodes need qemu-utils (qcow2), ipxe-qemu (the
# NICs' PXE ROMs) and iproute2 (network namespaces); its tests run dnsmasq. The devcloud's
# real-VM tests boot a Linux guest made of Debian's kernel and busybox-static, and watch the
# wire with tcpdump. The agent ramdisk (`qo image build-agent`) is a Debian root made by
# mmdebstrap, packed with cpio and zstd; the whole-disk image it deploys boots with GRUB
# (grub-pc-bin for BIOS) on a GPT made by sgdisk (gdisk). The BMC's status page is tested in
# Debian's Chromium, driven through Debian's chromedriver (the same version, always).
APT_PACKAGES=(ipmitool ipxe syslinux syslinux-common mtools dosfstools grub-efi-amd64-bin
              grub-pc-bin qemu-system-x86 ovmf xorriso qemu-utils ipxe-qemu iproute2
              dnsmasq-base busybox-static tcpdump mmdebstrap cpio zstd gdisk freeipmi-tools
              chromium chromium-driver)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

# A Linux kernel for the Ironic tier's lab test (Ironic network-boots a lab node into it, with
# an initramfs the test builds) and the devcloud's Linux guest, with the modules of its virtio
# NIC: Debian's, unpacked from its package, not installed (installing one would run the host's
# initramfs hooks and gain nothing).
KERNEL_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/quintupleo/linux
if [ ! -s "$KERNEL_DIR/vmlinuz" ] || [ ! -s "$KERNEL_DIR/modules/virtio_pci.ko" ]; then
  kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
  }
  package=$(kernel_package)
  if [ -z "$package" ]; then apt-get update -qq; package=$(kernel_package); fi
  work=$(mktemp -d)
  (cd "$work" && { apt-get download -qq "$package" 2>/dev/null \
     || { apt-get update -qq && apt-get download -qq "$package"; }; })
  dpkg-deb --fsys-tarfile "$work"/*.deb | tar -x -C "$work" --wildcards './boot/vmlinuz-*' \
    '*/drivers/virtio/virtio.ko' '*/drivers/virtio/virtio_ring.ko' '*/drivers/virtio/virtio_pci*.ko' \
    '*/net/core/failover.ko' '*/drivers/net/net_failover.ko' '*/drivers/net/virtio_net.ko'
  mkdir -p "$KERNEL_DIR/modules"
  find "$work/lib" -name '*.ko' -exec mv {} "$KERNEL_DIR/modules/" \;
  mv "$work"/boot/vmlinuz-* "$KERNEL_DIR/vmlinuz.partial"
  echo "$package" > "$KERNEL_DIR/package"
  mv "$KERNEL_DIR/vmlinuz.partial" "$KERNEL_DIR/vmlinuz"
  rm -rf "$work"
fi
