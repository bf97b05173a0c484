"""Mutation fuzzing of the IPMI front end: 12,000 datagrams mutated from a real ipmitool
session (the BMC answers or drops each, executes nothing, and a normal session works
afterwards); then every RMCP+ stage reached with valid earlier stages and its own message
mutated (Open Session, RAKP 1, RAKP 3, IPMI messages sealed in a session, sealed datagrams
mutated after sealing), and SOL packets in an active SOL session."""

from __future__ import annotations

import os
import random
import select
import socket
import struct
import threading

from harness.rmcp import Console, ipmi_request, open_session_request, rakp1
from quintupleo.bmc.ipmi import commands, wire

FUZZ_DATAGRAMS = 12_000
PER_STAGE = 4_000
COMMANDS = sorted(commands.COMMANDS)      # every command the BMC knows
NO_LOCKOUT = {"account_lockout_threshold": 0, "source_lockout_threshold": 0}


class RecordingProxy:
    """A UDP relay between ipmitool and the BMC that keeps every datagram the client sent."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.sent: list[bytes] = []
        self._client = None
        self._stop = False
        self._thread = threading.Thread(target=self._relay, daemon=True)
        self._thread.start()

    def _relay(self) -> None:
        while not self._stop:
            ready, _, _ = select.select([self.front, self.back], [], [], 0.1)
            for sock in ready:
                data, addr = sock.recvfrom(65535)
                if sock is self.front:
                    self._client = addr
                    self.sent.append(data)
                    self.back.sendto(data, self.target)
                elif self._client is not None:
                    self.front.sendto(data, self._client)

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.front.close()
        self.back.close()


def mutations(samples: list[bytes], count: int, seed: int = 623):
    rng = random.Random(seed)

    def flip(data: bytes) -> bytes:
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            if out:
                out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return bytes(out)

    def set_field(data: bytes) -> bytes:
        out = bytearray(data.ljust(16, b"\0"))
        offset, size = rng.choice([(4, 1), (5, 1), (6, 4), (10, 4), (14, 2), (13, 1), (3, 1)])
        value = rng.choice([0, 1, 0xFF, 0xFFFF, 0xFFFFFFFF, rng.getrandbits(32)])
        out[offset:offset + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        return bytes(out)

    strategies = [
        flip,
        set_field,
        lambda d: d[:rng.randrange(len(d) + 1)],                               # truncate
        lambda d: d + rng.randbytes(rng.randint(1, 64)),                       # extend
        lambda d: d[:rng.randrange(len(d) + 1)] + rng.choice(samples)[rng.randrange(16):],
        lambda d: rng.randbytes(rng.randint(0, 300)),                          # noise
        lambda d: bytes([6, 0, 0xFF, 7]) + rng.randbytes(rng.randint(0, 80)),  # IPMI noise
        lambda d: bytes([6, 0, 0xFF, 7, 6, rng.randrange(256)]) + rng.randbytes(40),
        lambda d: d,                                                           # replay
    ]
    for _ in range(count):
        yield rng.choice(strategies)(rng.choice(samples))


def test_fuzzed_datagrams_execute_nothing_and_never_hang(bmc_server):
    bmc = bmc_server("--fake-nodes", "1")
    proxy = RecordingProxy(bmc.port_base)
    try:
        # A real session to learn from: discovery, RAKP, boot flags, power on and off.
        for command in (["chassis", "bootdev", "pxe"], ["power", "on"], ["power", "off"],
                        ["power", "status"]):
            bmc.ipmitool(*command, port=proxy.port)
        bmc.ipmitool("chassis", "bootdev", "disk", "options=persistent", cipher=3,
                     port=proxy.port)
    finally:
        proxy.close()
    samples = proxy.sent
    assert len(samples) > 20
    requested_before = bmc.log.count("requested")
    override_before = bmc.log.count("boot override")

    # Each batch of 50 comes from another loopback address: one source sending this fast is
    # a flood the BMC drops unread (its per-source budget), which would test nothing else.
    sockets = [bound_socket(f"127.0.0.{2 + n}") for n in range(200)]
    answers = 0
    for index, datagram in enumerate(mutations(samples, FUZZ_DATAGRAMS)):
        sock = sockets[(index // 50) % len(sockets)]
        sock.sendto(datagram, ("127.0.0.1", bmc.port_base))
        if index % 50 == 49:
            # A presence ping after every 50: its pong proves the BMC read (and survived)
            # everything before it, so no mutant is lost in a socket buffer or hangs the loop.
            tag = (index // 50) & 0xFF
            sock.sendto(ping(tag), ("127.0.0.1", bmc.port_base))
            while True:
                answer = sock.recv(65535)   # socket.timeout here means the BMC hung
                if answer[3] == 6 and answer[8] == 0x40 and answer[9] == tag:
                    break
                answers += 1
    for sock in sockets:
        sock.close()

    assert bmc.proc.poll() is None, "the BMC died under fuzzing"
    # A normal session still works, and answers at once.
    assert bmc.ipmitool("power", "status").stdout.strip() == "Chassis Power is off"
    flags = bmc.ipmitool("chassis", "bootparam", "get", "5").stdout
    assert "Force Boot from default Hard-Drive" in flags and "all future boots" in flags
    log = bmc.log
    assert log.count("requested") == requested_before, "a fuzzed datagram ran an action"
    assert log.count("boot override") == override_before, "a fuzzed datagram set boot flags"
    assert "Traceback" not in log and "unexpected error" not in log
    assert answers > 0   # well-formed discovery requests among the mutants were answered
    assert "dropped" in log


def bound_socket(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 0))
    sock.settimeout(5)
    return sock


def ping(tag: int) -> bytes:
    return bytes([6, 0, 0xFF, 6]) + struct.pack(">IBBBB", 4542, 0x80, tag, 0, 0)


def test_asf_presence_ping(bmc_server):
    bmc = bmc_server("--fake-nodes", "1")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    sock.sendto(ping(0x2A), ("127.0.0.1", bmc.port_base))
    pong = sock.recv(512)
    sock.close()
    iana, kind, tag = struct.unpack_from(">IBB", pong, 4)
    assert (iana, kind, tag) == (4542, 0x40, 0x2A)
    assert pong[20] & 0x80   # supported entities: "IPMI supported"


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One mutation of a message: bits flipped, a byte or a length set to an edge value, cut,
    grown, spliced with itself, or replaced by noise."""
    choice = rng.randrange(7)
    out = bytearray(data)
    if choice == 0 and out:
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif choice == 1 and out:
        out[rng.randrange(len(out))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    elif choice == 2:
        del out[rng.randrange(len(out) + 1):]
    elif choice == 3:
        out += rng.randbytes(rng.choice([1, 15, 16, 17, 200, 255, 256, 1000]))
    elif choice == 4 and out:
        cut = rng.randrange(len(out))
        out = out[:cut] + out[rng.randrange(len(out)):]
    elif choice == 5:
        out = bytearray(rng.randbytes(rng.randint(0, 64)))
    else:
        out = bytearray(data[: rng.randrange(len(data) + 1)]) + bytes(rng.randint(0, 40))
    return bytes(out)


class Fuzzer:
    """Sends mutants from rotating loopback sources (one source this fast would be a flood
    the BMC drops unread) and, every 50, a presence ping whose pong proves the BMC read all
    before it."""

    def __init__(self, port: int, seed: int) -> None:
        self.port = port
        self.rng = random.Random(seed)
        self.sent = 0
        self.sync = Console(port, source="127.0.0.200", timeout=5)

    def consoles(self) -> tuple[Console, Console]:
        """Two sockets of one random source: valid exchanges on one, mutants (whose answers
        nobody reads) from the other."""
        source = f"127.0.{self.rng.randrange(4, 200)}.{self.rng.randrange(1, 255)}"
        return Console(self.port, source=source), Console(self.port, source=source)

    def send(self, console: Console, datagram: bytes) -> None:
        console.send(datagram)
        self.sent += 1
        if self.sent % 50 == 0:
            tag = (self.sent // 50) & 0xFF
            self.sync.send(ping(tag))
            while True:
                pong = self.sync.sock.recv(512)   # a timeout here: the BMC hung
                if pong[3] == 6 and pong[9] == tag:
                    break


def test_every_rmcp_stage_survives_mutation(bmc_server, config):
    bmc = bmc_server("--fake-nodes", "1", *config(**NO_LOCKOUT))
    fuzzer = Fuzzer(bmc.port_base, seed=2013)
    rng = fuzzer.rng
    for round_ in range(PER_STAGE):
        console, noise = fuzzer.consoles()
        # Open Session Request
        fuzzer.send(noise, wire.build_rmcp_plus(
            wire.PAYLOAD_OPEN_SESSION_REQUEST, 0, 0, mutate(rng, open_session_request(
                rng.choice([17, 3]), tag=round_ & 0xFF))))
        # RAKP 1 after a valid Open Session
        opened = console.setup(wire.PAYLOAD_OPEN_SESSION_REQUEST, open_session_request())
        assert opened and opened[1] == 0, opened
        bmc_id = struct.unpack_from("<I", opened, 8)[0]
        good_rakp1 = rakp1(bmc_id, os.urandom(16), rng.choice([b"admin", b"nobody", b"x" * 16]))
        fuzzer.send(noise, wire.build_rmcp_plus(0x12, 0, 0, mutate(rng, good_rakp1)))
        # RAKP 3 after a valid RAKP 1
        opened = console.setup(wire.PAYLOAD_OPEN_SESSION_REQUEST, open_session_request())
        bmc_id = struct.unpack_from("<I", opened, 8)[0]
        rakp2 = console.setup(0x12, rakp1(bmc_id, os.urandom(16), b"admin"))
        assert rakp2 and rakp2[1] == 0, rakp2
        rakp3 = bytes([0, 0, 0, 0]) + struct.pack("<I", bmc_id) + os.urandom(32)
        fuzzer.send(noise, wire.build_rmcp_plus(0x14, 0, 0, mutate(rng, rakp3)))
        console.close()
        noise.close()
    # inside a session: the data of every command mutated (checksums made good, so that the
    # command handlers parse it), whole messages mutated, sealed datagrams mutated
    console = Console(bmc.port_base, source="127.0.0.201")
    noise = Console(bmc.port_base, source="127.0.0.201")
    session = console.login()
    noise.session = session
    answered = 0
    for round_ in range(PER_STAGE):
        netfn, cmd = rng.choice([*COMMANDS, (rng.randrange(64), rng.randrange(256))])
        data = mutate(rng, rng.randbytes(rng.randint(0, 12)))
        fuzzer.send(console, console.sealed(ipmi_request(netfn, cmd, data, round_ & 0x3F)))
        fuzzer.send(noise, console.sealed(mutate(rng, ipmi_request(netfn, cmd, data))))
        fuzzer.send(noise, mutate(rng, console.sealed(ipmi_request(0x00, 0x01))))
        if round_ % 50 == 49:
            answered += console.drain()
    answered += console.drain()
    assert answered > PER_STAGE * 0.9, answered     # the handlers answered what they parsed
    assert console.command(0x06, 0x01)[0] == 0      # the session survived its own fuzzing
    console.close()
    noise.close()

    assert bmc.proc.poll() is None, "the BMC died under fuzzing"
    assert bmc.ipmitool("power", "status").stdout.strip().startswith("Chassis Power is")
    assert fuzzer.sent >= 6 * PER_STAGE
    bmc.stop()
    assert "Traceback" not in bmc.log and "unexpected error" not in bmc.log


def test_sol_survives_mutation(console_bmc):
    bmc = console_bmc(**NO_LOCKOUT)
    fuzzer = Fuzzer(bmc.port_base, seed=1997)
    console = Console(bmc.port_base, source="127.0.0.201")
    console.login()
    assert console.command(0x06, 0x48, bytes([1, 1, 0xC0, 0, 0, 0]))[0] == 0
    for sequence in range(PER_STAGE):
        packet = bytes([sequence % 15 + 1, 0, 0, 0]) + fuzzer.rng.randbytes(
            fuzzer.rng.choice([0, 1, 10, 199, 200]))
        fuzzer.send(console, console.sealed(mutate(fuzzer.rng, packet), wire.PAYLOAD_SOL))
    assert console.command(0x06, 0x49, bytes([1, 1, 0, 0, 0, 0]))[0] == 0   # deactivate
    console.close()
    assert bmc.proc.poll() is None
    assert "Enabled                         : true" in bmc.ipmitool("sol", "info").stdout
    bmc.stop()
    assert "Traceback" not in bmc.log and "unexpected error" not in bmc.log
