"""Lab logic without QEMU: boot order arguments, node identities, the marker boot sector, SOL
packet handling and configuration answers."""

from __future__ import annotations

import asyncio

import pytest

from quintupleo.backends.fake import FakeBackend
from quintupleo.backends.qemu.machine import boot_args
from quintupleo.bmc.controller import NodeController
from quintupleo.bmc.ipmi import commands
from quintupleo.bmc.ipmi.sol import SolConsole
from quintupleo.bmc.store import BootStore
from quintupleo.errors import ConfigError
from quintupleo.lab.layout import check_name, new_nodes, parse_roles
from quintupleo.lab.marker import boot_sector
from quintupleo.model import BootDevice, BootMode, BootOverride


@pytest.mark.parametrize(("override", "expected"), [
    (BootOverride(), "order=cn"),
    (BootOverride(BootDevice.PXE, False, BootMode.LEGACY), "once=n,order=cn"),
    (BootOverride(BootDevice.PXE, True, BootMode.LEGACY), "order=nc"),
    (BootOverride(BootDevice.DISK, True, BootMode.LEGACY), "order=cn"),
    (BootOverride(BootDevice.DISK, False, BootMode.LEGACY), "once=c,order=cn"),
    (BootOverride(BootDevice.BIOS, False, BootMode.LEGACY), "order=cn"),
])
def test_boot_order_follows_the_override(override, expected):
    assert boot_args(override) == ["-boot", expected]


def test_node_identities_are_stable_and_distinct():
    first = new_nodes("lab", [(None, 3)], 1, 512, 2)
    assert first == new_nodes("lab", [(None, 3)], 1, 512, 2)
    assert [n.name for n in first] == ["node-0", "node-1", "node-2"]
    assert len({n.mac for n in first}) == 3 and len({n.uuid for n in first}) == 3
    assert all(n.mac.startswith("52:54:00:") for n in first)
    assert new_nodes("other", [(None, 1)], 1, 512, 2)[0].mac != first[0].mac
    roles = new_nodes("lab", parse_roles(["controller=1", "compute=2"]), 1, 512, 2)
    assert [(n.name, n.index, n.role) for n in roles] == [
        ("controller-0", 0, "controller"), ("compute-0", 1, "compute"),
        ("compute-1", 2, "compute")]


@pytest.mark.parametrize("spec", [["x"], ["a=0"], ["A=1"], ["a=1", "a=2"], ["a=b"]])
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
    ctx = commands.Context(None, b"", commands.BootParameters(), None, lambda _: None,  # type: ignore[arg-type]
                           "peer", None, None, 6230)
    assert commands.get_sol_configuration(ctx, bytes([1, 1, 0, 0])) == bytes([0x11, 0x01])
    assert commands.get_sol_configuration(ctx, bytes([1, 8, 0, 0])) == bytes([0x11, 0x56,
                                                                             0x18])
    assert commands.get_sol_configuration(ctx, bytes([0x81, 1, 0, 0])) == bytes([0x11])
    with pytest.raises(commands.Completion) as unknown:
        commands.get_sol_configuration(ctx, bytes([1, 42, 0, 0]))
    assert unknown.value.code == commands.CC_PARAMETER_NOT_SUPPORTED
