"""10,000+ malformed and mutated datagrams, built from a real ipmitool session: the BMC answers
or drops each, executes nothing, and a normal session works afterwards."""

from __future__ import annotations

import random
import select
import socket
import struct
import threading

FUZZ_DATAGRAMS = 12_000


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
