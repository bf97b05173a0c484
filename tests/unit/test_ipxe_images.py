"""The iPXE image recipes: scripts, GRUB config, partition table, reproducible builds."""

from __future__ import annotations

import struct

import pytest

from quintupleo.errors import ConfigError
from quintupleo.images.ipxe import (
    ESP_OFFSET,
    IpxeOptions,
    _mbr,
    build,
    grub_config,
    ipxe_script,
    missing_tools,
)


def test_script_tries_every_nic_with_the_mtu_and_gives_up_only_if_asked():
    forever = ipxe_script(IpxeOptions(mtu=1450))
    assert forever.startswith("#!ipxe\n")
    assert "set net${idx}/mtu 1450" in forever and "autoboot net${idx}" in forever
    assert "give_up ||" not in forever and "sleep 5" in forever
    bounded = ipxe_script(IpxeOptions(mtu=None, rounds=3, pause=1))
    assert "mtu" not in bounded
    assert "iseq ${round} 3 && goto give_up" in bounded


def test_grub_config_loops_over_ipxe():
    assert "while true; do" in grub_config(IpxeOptions())
    assert "for round in 1 2; do" in grub_config(IpxeOptions(rounds=2))
    assert "chainloader /EFI/quintupleo/ipxe.efi" in grub_config(IpxeOptions())


@pytest.mark.parametrize("options", [dict(mtu=100), dict(rounds=-1), dict(pause=99999)])
def test_bad_options_are_refused(options):
    with pytest.raises(ConfigError):
        IpxeOptions(**options)


def test_partition_table_has_one_esp():
    table = _mbr(4 << 20)
    assert len(table) == 512 and table[510:] == b"\x55\xaa"
    kind, start, sectors = table[450], *struct.unpack("<II", table[454:462])
    assert (kind, start * 512, (start + sectors) * 512) == (0xEF, ESP_OFFSET, 4 << 20)


@pytest.mark.skipif(bool(missing_tools()), reason="image tools not installed")
def test_builds_are_reproducible(tmp_path):
    first = build(tmp_path / "a")
    second = build(tmp_path / "b", IpxeOptions())
    assert [i.sha256 for i in first] == [i.sha256 for i in second]
    assert build(tmp_path / "c", IpxeOptions(mtu=1500))[0].sha256 != first[0].sha256


def test_agent_archive_is_reproducible_and_holds_the_tree(tmp_path):
    """The agent ramdisk's packing: the same tree gives the same bytes, whatever the files'
    times, and cpio reads every file back."""
    import os
    import subprocess

    from quintupleo.images.agent import archive
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "init").write_text("#!/bin/sh\n")
    (root / "usr" / "bin" / "tool").write_bytes(b"\x7fELF" + bytes(100))
    (root / "link").symlink_to("usr/bin/tool")
    archive(root, tmp_path / "one.zst")
    os.utime(root / "init", (1, 1))
    archive(root, tmp_path / "two.zst")
    assert (tmp_path / "one.zst").read_bytes() == (tmp_path / "two.zst").read_bytes()
    listing = subprocess.run(f"zstd -dc {tmp_path / 'one.zst'} | cpio -t --quiet", shell=True,
                             capture_output=True, text=True, check=True).stdout.split()
    assert listing == ["init", "link", "usr", "usr/bin", "usr/bin/tool"]


def test_whole_disk_image_is_gpt_with_grub_for_both_firmwares(tmp_path):
    """GPT (protective MBR with GRUB's boot.img pointing at its core in the BIOS boot
    partition), the ESP a FAT file system holding both GRUB's EFI loader and the marker."""
    import subprocess

    from quintupleo.images.marker import BIOS_BOOT_LBA, whole_disk_image
    path = whole_disk_image(tmp_path / "disk.raw", marker="QO-UNIT-MARKER")
    data = path.read_bytes()
    assert data[512:520] == b"EFI PART" and data[510:512] == b"\x55\xaa"
    assert int.from_bytes(data[0x5C:0x64], "little") == BIOS_BOOT_LBA
    core = data[BIOS_BOOT_LBA * 512:]
    assert int.from_bytes(core[0x1F4:0x1FC], "little") == BIOS_BOOT_LBA + 1
    table = subprocess.run(["sgdisk", "-p", str(path)], capture_output=True, text=True,
                           check=True).stdout
    assert "EF02" in table and "EF00" in table
    assert b"QO-UNIT-MARKER" in data
    assert whole_disk_image(tmp_path / "again.raw", marker="QO-UNIT-MARKER").read_bytes() == data
