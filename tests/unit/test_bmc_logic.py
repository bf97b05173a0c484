"""Pure logic of the BMC: boot-flag codec, RAKP checks, sequence window, controller rules."""

from __future__ import annotations

import asyncio
import struct

import pytest

from quintupleo.backends.fake import FakeBackend
from quintupleo.bmc import raid
from quintupleo.bmc.controller import NodeController, Refresher
from quintupleo.bmc.firmware import image_target, shown
from quintupleo.bmc.ipmi import commands, context, handshake, session, wire
from quintupleo.bmc.store import BootStore
from quintupleo.errors import InvalidSetting, NodeBusy, NotInPresentState
from quintupleo.model import (
    BootDevice,
    BootMode,
    BootOverride,
    Credentials,
    PowerAction,
    PowerState,
)


@pytest.mark.parametrize("override", [
    BootOverride(BootDevice.PXE, False, BootMode.UEFI),
    BootOverride(BootDevice.DISK, True, BootMode.UEFI),
    BootOverride(BootDevice.CDROM, True, BootMode.LEGACY),
    BootOverride(BootDevice.BIOS, False, BootMode.LEGACY),
    BootOverride(BootDevice.NONE, False, BootMode.UEFI),
])
def test_boot_flags_round_trip(override):
    assert commands.decode_boot_flags(commands.encode_boot_flags(override)) == override


def test_boot_flags_ironic_bytes():
    assert commands.decode_boot_flags(bytes([0xA0, 0x04, 0, 0, 0])) == \
        BootOverride(BootDevice.PXE, False, BootMode.UEFI)
    assert commands.decode_boot_flags(bytes([0xE0, 0x08, 0, 0, 0])) == \
        BootOverride(BootDevice.DISK, True, BootMode.UEFI)
    # valid bit clear: no override, whatever the device bits say
    assert not commands.decode_boot_flags(bytes([0x40, 0x04, 0, 0, 0])).active
    with pytest.raises(context.Completion):
        commands.decode_boot_flags(bytes([0x80, 0x3C, 0, 0, 0]))   # floppy


SOURCE = "192.0.2.7"


def _open(setup: handshake.Handshake, suite: session.CipherSuite,
          source: str = SOURCE) -> tuple[int, bytes]:
    records = bytes([0, 0, 0, 8, suite.auth_alg, 0, 0, 0, 1, 0, 0, 8, suite.integrity_alg,
                     0, 0, 0, 2, 0, 0, 8, suite.confidentiality_alg, 0, 0, 0])
    answer = setup.open_session(bytes([7, 4, 0, 0]) + struct.pack("<I", 0xA1) + records, source)
    assert answer[1] == handshake.ST_OK
    return struct.unpack_from("<I", answer, 8)[0], answer


@pytest.mark.parametrize("suite", session.SUITES.values(), ids=lambda s: f"suite{s.id}")
def test_rakp3_with_a_wrong_key_is_refused(suite):
    setup = handshake.Handshake(Credentials("admin", "password"), bytes(16))
    bmc_id, _ = _open(setup, suite)
    rm = bytes(range(16))
    rakp2 = setup.rakp1(bytes([7, 0, 0, 0]) + struct.pack("<I", bmc_id) + rm
                        + bytes([0x14, 0, 0, 5]) + b"admin", SOURCE)
    assert rakp2[1] == handshake.ST_OK
    rc = rakp2[8:24]
    wrong = suite.mac(b"not-the-password".ljust(20, b"\0"),
                      rc + struct.pack("<I", 0xA1) + bytes([0x14, 5]) + b"admin")
    rakp4 = setup.rakp3(bytes([7, 0, 0, 0]) + struct.pack("<I", bmc_id) + wrong, SOURCE)
    assert rakp4[1] == handshake.ST_INVALID_ICV
    assert setup.get(bmc_id) is None          # the half-open session is gone


def test_cipher_suite_zero_is_refused():
    setup = handshake.Handshake(Credentials("admin", "password"), bytes(16))
    none = bytes([0, 0, 0, 8, 0, 0, 0, 0, 1, 0, 0, 8, 0, 0, 0, 0, 2, 0, 0, 8, 0, 0, 0, 0])
    answer = setup.open_session(bytes([1, 4, 0, 0, 1, 0, 0, 0]) + none, SOURCE)
    assert answer[1] == handshake.ST_NO_CIPHER_SUITE_MATCH
    assert not setup.sessions


def test_sequence_window_rejects_zero_replay_and_stale():
    s = session.Session(1, 2, session.SUITES[3], session.ADMINISTRATOR)
    assert not s.accept_sequence(0)
    assert s.accept_sequence(5) and not s.accept_sequence(5)
    assert s.accept_sequence(100) and not s.accept_sequence(60) and s.accept_sequence(90)


def test_encrypt_decrypt_and_seal_round_trip():
    s = session.Session(1, 2, session.SUITES[17], session.ADMINISTRATOR, rm=b"r" * 16,
                        rc=b"c" * 16, role=4, username=b"admin")
    s.derive_keys(b"password".ljust(20, b"\0"))
    for size in range(0, 40):
        message = bytes(range(size))
        assert s.decrypt(s.encrypt(message)) == message
    packet = wire.parse_rmcp_plus(s.seal(b"\x81\x1c\x63\x20\x00\x01\x00\xdf"), 16)
    assert s.verify(packet)
    with pytest.raises(wire.Malformed):
        wire.parse_ipmi_request(b"\x20\x18\x00\x81\x00\x01\x00")   # bad checksum


def _controller(tmp_path, backend: FakeBackend) -> tuple[NodeController, Refresher]:
    store = BootStore(tmp_path / "boot.sqlite")
    controller = NodeController(backend.infos[0], backend, store)
    refresher = Refresher(backend, [controller], interval=0.05, fast_interval=0.01)
    controller._on_action = refresher.poke
    return controller, refresher


def test_controller_rules(tmp_path):
    async def scenario() -> None:
        backend = FakeBackend(1)
        controller, refresher = _controller(tmp_path, backend)
        with pytest.raises(NodeBusy):
            controller.power_state()              # nothing observed yet
        await refresher.refresh()
        task = asyncio.create_task(refresher.run())
        assert controller.power_state() is PowerState.OFF
        controller.request(PowerAction.OFF)       # off while off: nothing runs
        with pytest.raises(NotInPresentState):
            controller.request(PowerAction.CYCLE)
        controller.set_boot_override(BootOverride(BootDevice.PXE, False, BootMode.UEFI))
        controller.request(PowerAction.ON)
        controller.request(PowerAction.ON)        # coalesced
        assert controller.power_state() is PowerState.ON   # the model follows at once
        while controller.pending:
            await asyncio.sleep(0.01)
        assert backend.actions == [("fake-0", PowerAction.ON)]
        assert backend.nodes["fake-0"].last_boot_device is BootDevice.PXE
        assert controller.override.device is BootDevice.NONE   # one-time: consumed
        assert controller.override.mode is BootMode.UEFI
        # a change made outside the BMC is seen at the next refresh
        backend.nodes["fake-0"].power = PowerState.OFF
        await asyncio.sleep(0.2)
        assert controller.power_state() is PowerState.OFF
        task.cancel()

    asyncio.run(scenario())
    store = BootStore(tmp_path / "boot.sqlite")
    assert store.load_all()["fake:fake-0"] == BootOverride(BootDevice.NONE, False, BootMode.UEFI)


def test_idle_setups_expire():
    setup = handshake.Handshake(Credentials("admin", "password"), bytes(16))
    setup.SETUP_TIMEOUT = 0.05
    bmc_id, _ = _open(setup, session.SUITES[3])
    assert setup.get(bmc_id) is not None
    import time
    time.sleep(0.1)
    assert setup.get(bmc_id) is None


def test_staged_boot_reads_on_only_when_done(tmp_path):
    """A boot through steps (rescue, rebuild): off until the backend shows it up; meanwhile
    other actions are refused as busy, a repeat is coalesced; a failed task is reported."""
    async def scenario() -> None:
        backend = FakeBackend(1, delay=0.3, staged=True)
        controller, refresher = _controller(tmp_path, backend)
        await refresher.refresh()
        task = asyncio.create_task(refresher.run())
        controller.set_boot_override(BootOverride(BootDevice.PXE, False, BootMode.LEGACY))
        controller.request(PowerAction.ON)
        await asyncio.sleep(0.05)
        assert controller.power_state() is PowerState.OFF      # not yet booting the device
        assert controller.transition is PowerState.ON
        controller.request(PowerAction.ON)                      # a client's retry: coalesced
        with pytest.raises(NodeBusy) as busy:
            controller.request(PowerAction.OFF)
        assert busy.value.retry_after > 0
        while controller.pending:
            await asyncio.sleep(0.01)
        assert controller.power_state() is PowerState.ON
        assert controller.transition is None
        assert backend.actions == [("fake-0", PowerAction.ON)]
        # a task that ends elsewhere than its target: the model takes what the backend shows
        controller.request(PowerAction.RESET)
        await asyncio.sleep(0.05)
        backend.nodes["fake-0"].target = PowerState.OFF         # the "hypervisor" failed it
        while controller.pending:
            await asyncio.sleep(0.01)
        assert controller.power_state() is PowerState.OFF
        task.cancel()

    asyncio.run(scenario())


def test_virtual_media_is_persisted_and_passed_to_boots(tmp_path):
    async def scenario() -> None:
        backend = FakeBackend(1)
        controller, refresher = _controller(tmp_path, backend)
        await refresher.refresh()
        await controller.insert_media("http://192.0.2.1/boot.iso")
        controller.set_boot_override(BootOverride(BootDevice.CDROM, False, BootMode.UEFI))
        controller.request(PowerAction.ON)
        while controller.pending:
            await refresher.refresh()
            await asyncio.sleep(0.01)
        assert backend.nodes["fake-0"].last_boot_media == "fake-media:http://192.0.2.1/boot.iso"
        assert BootStore(tmp_path / "boot.sqlite").load_media() == {
            "fake:fake-0": ("http://192.0.2.1/boot.iso", "fake-media:http://192.0.2.1/boot.iso")}
        await controller.eject_media()
        assert controller.media is None

    asyncio.run(scenario())
    assert BootStore(tmp_path / "boot.sqlite").load_media() == {}


def test_a_console_replay_and_the_live_stream_overlap_once():
    """Nova's console log (replayed first) and the serial stream opened just before it share a
    few bytes: sent once, whether the stream repeats part of the log or runs on from it."""
    from quintupleo.backends.openstack.console import overlap
    log = b"SeaBIOS\nBooting from Hard Disk...\nMARK"   # as the compute API gives it
    assert overlap(log, b"Hard Disk...\r\nMARKER\r\n") == b"Hard Disk...\nMARK"
    assert overlap(log, b"ing from Hard Disk") == b"ing from Hard Disk...\nMARK"
    assert overlap(log, b"new output, not in the log") == b""
    assert overlap(log, b"K!") == b""           # too short to say: nothing is dropped
    assert overlap(log, b"\r\nMARK") == b"\nMARK"   # a few bytes, at the log's very end
    assert overlap(log, b"\nBoo") == b""          # a few bytes, inside the log: new output
    assert overlap(b"", b"abc") == b""


def test_a_console_replay_matches_the_stream_without_the_control_bytes_nova_drops():
    """The compute API's console log has no carriage returns (nor ESC): the stream's repeat of
    it is still found and sent once, and the replay gets its CR LF line ends back."""
    import aiohttp

    from quintupleo.backends.openstack.console import ConsoleReader

    class Socket:   # the stream's later messages, then its close
        def __init__(self, *chunks: bytes) -> None:
            self.messages = [aiohttp.WSMessage(aiohttp.WSMsgType.BINARY, c, None)
                             for c in chunks]

        async def receive(self) -> aiohttp.WSMessage:
            return (self.messages.pop(0) if self.messages
                    else aiohttp.WSMessage(aiohttp.WSMsgType.CLOSE, None, None))

    async def everything(reader: ConsoleReader) -> bytes:
        out = b""
        while chunk := await reader.read():
            out += chunk
        return out

    log = b"Booting from DVD/CD...\n\nQO-CD-BOOTED\n"   # as the compute API gives it
    reader = ConsoleReader(Socket(b"BOOTED\r\n", b"\x1b[0mnext\r\n"), log,
                           first=b"\r\n\r\nQO-CD-")
    assert asyncio.run(everything(reader)) == (
        b"Booting from DVD/CD...\r\n\r\nQO-CD-BOOTED\r\n\x1b[0mnext\r\n")

    # The serial port sends a byte at a time: a lone CR says nothing; the repeat is found later.
    log = b"\nQO-NOVA-CD-BOOTED\n"
    reader = ConsoleReader(Socket(b"\r", b"\n", b"QO-NOVA-CD-", b"BOOTED\r\n"), log)
    assert asyncio.run(everything(reader)) == b"\r\nQO-NOVA-CD-BOOTED\r\n"
    # A stream that stops after a few bytes: a repeat only where they reach the log's end.
    reader = ConsoleReader(Socket(b"ED\r\n"), log)
    assert asyncio.run(everything(reader)) == b"\r\nQO-NOVA-CD-BOOTED\r\n"
    reader = ConsoleReader(Socket(b"QO\r\n"), log)
    assert asyncio.run(everything(reader)) == b"\r\nQO-NOVA-CD-BOOTED\r\nQO\r\n"


def test_raid_plans_what_a_controller_builds():
    gib = 2**30
    mirror = raid.plan([], "RAID1", None, None, None, 10 * gib)
    assert (mirror.id, mirror.drives, mirror.capacity) == ("1", (0, 1), 10 * gib)
    striped = raid.plan([mirror], "RAID0", [2, 3], 15 * gib + 1, "fast", 10 * gib)
    assert (striped.id, striped.name, striped.capacity) == ("2", "fast", 15 * gib + raid.STRIPE)
    for args, why in [(("RAID6", None, None), "not supported"),
                      (("RAID5", None, None), "free"),
                      (("RAID0", [1], None), "already belong"),
                      (("RAID10", [2, 3, 3], None), "distinct"),
                      (("RAID1", [2], None), "cannot be built"),
                      (("RAID0", [2], 11 * gib), "at most")]:
        with pytest.raises(InvalidSetting, match=why):
            raid.plan([mirror], *args, None, 10 * gib)


def test_a_firmware_image_is_named_for_its_component_and_version():
    assert image_target("http://h/fw/bios-2.1.0.bin") == ("bios", "2.1.0")
    assert image_target("https://h:8443/BMC_1.4.tar.gz?x=1") == ("bmc", "1.4")
    assert image_target("http://h/bios-U46_v2.10") == ("bios", "U46_v2.10")
    for uri in ("http://h/firmware.bin", "ftp://h/bios-1.bin", "http:///bios-1.bin",
                "http://h/bios-.bin"):
        with pytest.raises(InvalidSetting):
            image_target(uri)
    assert shown("http://user:pw@h:81/bios-1.bin?token=t") == "http://h:81/bios-1.bin"


def test_a_nova_server_reads_as_a_machine_would():
    """Nova's view as a BMC's power state: a rescued guest that powered itself off is off,
    though Nova leaves it "rescued"; one that runs, or an active server, is on."""
    from openstack.compute.v2.server import Server

    from quintupleo.backends.openstack.driver import observation

    def power(**fields) -> PowerState:
        return observation(Server(**fields)).power

    assert power(vm_state="rescued", power_state=1) is PowerState.ON
    assert power(vm_state="rescued", power_state=4) is PowerState.OFF
    assert power(vm_state="active", power_state=1) is PowerState.ON
    assert power(vm_state="stopped", power_state=4) is PowerState.OFF
    assert power(vm_state="stopped", power_state=4, task_state="powering-on") is PowerState.ON
    assert observation(Server(vm_state="active", task_state="rebooting")).busy
