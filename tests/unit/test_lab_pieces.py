"""Lab logic without QEMU: boot order arguments, node identities, the marker boot sector, SOL
packet handling and configuration answers."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from virt.firmware.varstore.edk2 import Edk2VarStore

from quintupleo.backends.fake import FakeBackend
from quintupleo.backends.qemu import uefi
from quintupleo.backends.qemu.machine import boot_order
from quintupleo.bmc.controller import NodeController
from quintupleo.bmc.ipmi import commands, context
from quintupleo.bmc.ipmi.completion import Cc
from quintupleo.bmc.ipmi.sol import SolConsole
from quintupleo.bmc.store import BootStore
from quintupleo.errors import ConfigError
from quintupleo.images.marker import boot_sector
from quintupleo.lab.layout import Lab, Role, Shape, check_name, new_nodes, parse_roles
from quintupleo.lab.machines import machine
from quintupleo.model import BootDevice, BootMode, BootOverride


@pytest.mark.parametrize(("override", "expected"), [
    (BootOverride(), ("disk", "nic", "cd")),
    (BootOverride(BootDevice.PXE, False, BootMode.LEGACY), ("nic", "disk", "cd")),
    (BootOverride(BootDevice.PXE, True, BootMode.UEFI), ("nic", "disk", "cd")),
    (BootOverride(BootDevice.CDROM, False, BootMode.LEGACY), ("cd", "disk", "nic")),
    (BootOverride(BootDevice.DISK, True, BootMode.LEGACY), ("disk", "nic", "cd")),
    (BootOverride(BootDevice.BIOS, False, BootMode.LEGACY), ("disk", "nic", "cd")),
])
def test_boot_order_follows_the_override(override, expected):
    assert boot_order(override) == expected


def test_boot_order_is_each_devices_bootindex():
    lab = Lab("t", new_nodes("t", [Role(None, 1, Shape(firmware="uefi"))]), mcast="230.0.0.1:1")
    argv = " ".join(machine(lab, lab.nodes[0]).argv(("cd", "disk", "nic"), "/x/media.iso"))
    assert "id=cd,bootindex=1" in argv and "id=disk,bootindex=2" in argv
    assert "id=nic,bootindex=3" in argv and "file=/x/media.iso" in argv
    assert "OVMF_CODE" in argv and "-boot" not in argv.split()


def test_node_identities_are_stable_and_distinct():
    first = new_nodes("lab", [Role(None, 3)])
    assert first == new_nodes("lab", [Role(None, 3)])
    assert [n.name for n in first] == ["node-0", "node-1", "node-2"]
    assert len({n.mac for n in first}) == 3 and len({n.uuid for n in first}) == 3
    assert all(n.mac.startswith("52:54:00:") for n in first)
    assert new_nodes("other", [Role(None, 1)])[0].mac != first[0].mac
    roles = new_nodes("lab", parse_roles(["controller=1,memory=2048,cpus=2",
                                          "compute=2,boot-mode=uefi"], Shape(disk_gb=5)))
    assert [(n.name, n.index, n.role, n.cpus, n.memory_mb, n.disk_gb, n.firmware)
            for n in roles] == [
        ("controller-0", 0, "controller", 2, 2048, 5, "bios"),
        ("compute-0", 1, "compute", 1, 512, 5, "uefi"),
        ("compute-1", 2, "compute", 1, 512, 5, "uefi")]


@pytest.mark.parametrize("spec", [["x"], ["a=0"], ["A=1"], ["a=1", "a=2"], ["a=b"],
                                  ["a=1,ram=5"], ["a=1,cpus=two"], ["a=1,cpus=0"],
                                  ["a=1,memory=64"], ["a=1,boot-mode=efi"], ["a=1,disk="]])
def test_bad_roles(spec):
    with pytest.raises(ConfigError):
        parse_roles(spec)


@pytest.mark.parametrize("name", ["Lab", "1lab", "a-very-long-lab-name", "la b"])
def test_bad_lab_names(name):
    with pytest.raises(ConfigError):
        check_name(name)


def test_marker_boot_sector():
    sector = boot_sector("HELLO")
    assert len(sector) == 512 and sector[510:] == b"\x55\xaa"
    assert b"\r\nHELLO\r\n\0" in sector
    with pytest.raises(ValueError):
        boot_sector("x" * 500)


def test_sol_acknowledges_what_it_receives_and_answers_its_parameters(tmp_path):
    async def scenario() -> None:
        backend = FakeBackend(1)
        controller = NodeController(backend.infos[0], backend, BootStore(tmp_path / "b.db"))
        sent: list[bytes] = []
        console = SolConsole(controller, lambda data, addr: sent.append(data))
        session = object()
        assert console.receive(session, b"\x01\x00\x00\x00abc") is None   # not activated
        console.session = session    # as activate() would, without a console task
        assert console.receive(session, b"\x03\x00\x00\x00abc") == bytes([0, 3, 3, 0])
        assert console.receive(session, b"\x00\x05\x10\x00") is None      # an ack only
        assert console.receive(session, b"\x01") is None                  # too short
        assert console.receive(object(), b"\x02\x00\x00\x00x") is None    # another session

    asyncio.run(scenario())
    node = SimpleNamespace(has_console=True)    # what the commands ask of a controller
    ctx = context.Context(node, b"", context.BootParameters(), None, lambda _: None,  # type: ignore[arg-type]
                           "peer", None, None, 6230)
    assert commands.get_sol_configuration(ctx, bytes([1, 1, 0, 0])) == bytes([0x11, 0x01])
    node.has_console = False                    # e.g. a cloud without serial consoles
    assert commands.get_sol_configuration(ctx, bytes([1, 1, 0, 0])) == bytes([0x11, 0x00])
    node.has_console = True
    assert commands.get_sol_configuration(ctx, bytes([1, 8, 0, 0])) == bytes([0x11, 0x56,
                                                                             0x18])
    assert commands.get_sol_configuration(ctx, bytes([0x81, 1, 0, 0])) == bytes([0x11])
    with pytest.raises(context.Completion) as unknown:
        commands.get_sol_configuration(ctx, bytes([1, 42, 0, 0]))
    assert unknown.value.code == Cc.PARAMETER_NOT_SUPPORTED


@pytest.mark.skipif(not Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd").exists(), reason="no OVMF")
def test_a_uefi_variable_store_takes_the_bmcs_secure_boot_settings(tmp_path):
    """Secure boot on and off, the keys deleted (setup mode) and enrolled again, read back from
    the store as the firmware will (virt-firmware parses it); nothing written when unchanged."""
    store = tmp_path / "vars.fd"
    shutil.copyfile(uefi.TEMPLATE, store)

    def read() -> tuple[bool, set[str]]:
        variables = Edk2VarStore(str(store)).get_varlist()
        enabled = variables.get("SecureBootEnable")
        return (enabled is not None and bytes(enabled.data[:1]) == b"\x01",
                {k for k in uefi.KEYS if k in variables})

    assert read() == (True, set(uefi.KEYS))            # Debian's template: on, keys enrolled
    assert uefi.set_secure_boot(store, False, True) and read() == (False, set(uefi.KEYS))
    before = store.stat().st_mtime_ns
    assert not uefi.set_secure_boot(store, False, True) and store.stat().st_mtime_ns == before
    assert uefi.set_secure_boot(store, True, False) and read() == (False, set())   # setup mode
    assert uefi.set_secure_boot(store, True, True) and read() == (True, set(uefi.KEYS))
