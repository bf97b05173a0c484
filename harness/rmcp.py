"""A small RMCP+ console for hostile tests and benchmarks: it logs in as ipmitool does (cipher
suite 17 or 3), then sends whatever it is told, well formed or not, sealed with the session's
keys so that a mutated message reaches the BMC's command and SOL parsers. Correctness is the
real clients' job (ipmitool, FreeIPMI, pyghmi); this one exists to send what they never would.
The session crypto is QuintupleO's own Session with the two IDs swapped (the console's view).
"""

from __future__ import annotations

import os
import socket
import struct

from quintupleo.bmc.ipmi import wire
from quintupleo.bmc.ipmi.session import SUITES, Session


class LoginFailed(Exception):
    def __init__(self, stage: str, status: int | None) -> None:
        super().__init__(f"{stage}: status {status if status is None else hex(status)}")
        self.stage, self.status = stage, status


def ipmi_request(netfn: int, cmd: int, data: bytes = b"", seq: int = 1) -> bytes:
    head = bytes([0x20, netfn << 2])
    body = bytes([0x81, seq << 2, cmd]) + data
    return head + bytes([wire.checksum(head)]) + body + bytes([wire.checksum(body)])


def open_session_request(suite_id: int = 17, console_id: int = 0xA1, tag: int = 0) -> bytes:
    suite = SUITES[suite_id]
    return bytes([tag, 0, 0, 0]) + struct.pack("<I", console_id) + bytes(
        [0, 0, 0, 8, suite.auth_alg, 0, 0, 0, 1, 0, 0, 8, suite.integrity_alg, 0, 0, 0,
         2, 0, 0, 8, suite.confidentiality_alg, 0, 0, 0])


def rakp1(bmc_id: int, rm: bytes, user: bytes, role: int = 0x14, tag: int = 0) -> bytes:
    return bytes([tag, 0, 0, 0]) + struct.pack("<I", bmc_id) + rm + bytes(
        [role, 0, 0, len(user)]) + user


class Console:
    """One UDP socket (bound to `source`, a loopback address of the test's choosing)."""

    def __init__(self, port: int, host: str = "127.0.0.1", source: str = "127.0.0.1",
                 timeout: float = 2.0) -> None:
        self.target = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.session: Session | None = None

    def close(self) -> None:
        self.sock.close()

    def send(self, datagram: bytes) -> None:
        self.sock.sendto(datagram, self.target)

    def drain(self) -> int:
        """Throw away answers still waiting (to datagrams sent without waiting)."""
        count = 0
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(65535)
                count += 1
        except BlockingIOError:
            return count
        finally:
            self.sock.settimeout(self.timeout)

    def exchange(self, datagram: bytes) -> bytes | None:
        """Send, and the first answer (None on a timeout); older answers are dropped."""
        self.drain()
        self.send(datagram)
        try:
            return self.sock.recv(65535)
        except TimeoutError:
            return None

    def setup(self, payload_type: int, payload: bytes) -> bytes | None:
        answer = self.exchange(wire.build_rmcp_plus(payload_type, 0, 0, payload))
        return wire.parse_rmcp_plus(answer).payload if answer else None

    def login(self, user: str = "admin", password: str = "password",
              suite_id: int = 17, role: int = 0x14) -> Session:
        """Open Session, RAKP 1-4; LoginFailed at the first stage that is refused."""
        suite, name, console_id = SUITES[suite_id], user.encode(), 0xA1
        opened = self.setup(wire.PAYLOAD_OPEN_SESSION_REQUEST,
                            open_session_request(suite_id, console_id))
        if not opened or opened[1]:
            raise LoginFailed("open session", opened[1] if opened else None)
        bmc_id = struct.unpack_from("<I", opened, 8)[0]
        rm = os.urandom(16)
        rakp2 = self.setup(0x12, rakp1(bmc_id, rm, name, role))
        if not rakp2 or rakp2[1]:
            raise LoginFailed("RAKP 2", rakp2[1] if rakp2 else None)
        key = password.encode().ljust(20, b"\0")
        rc = rakp2[8:24]
        proof = suite.mac(key, rc + struct.pack("<I", console_id) + bytes([role, len(name)])
                          + name)
        rakp4 = self.setup(0x14, bytes([0, 0, 0, 0]) + struct.pack("<I", bmc_id) + proof)
        if not rakp4 or rakp4[1]:
            raise LoginFailed("RAKP 4", rakp4[1] if rakp4 else None)
        # the console's view of the session: what it seals goes to the BMC's ID
        session = Session(console_id, bmc_id, suite, role & 0x0F, rm=rm, rc=rc, role=role,
                          username=name)
        session.derive_keys(key)
        self.session = session
        code, _ = self.command(0x06, 0x3B, bytes([role & 0x0F]))   # as ipmitool -L does
        if code:
            raise LoginFailed("Set Session Privilege Level", code)
        return session

    def sealed(self, message: bytes, payload_type: int = wire.PAYLOAD_IPMI) -> bytes:
        assert self.session is not None
        return self.session.seal(message, payload_type)

    def request(self, message: bytes, payload_type: int = wire.PAYLOAD_IPMI) -> bytes | None:
        """Send a sealed message; the decrypted payload of the answer (None: no answer)."""
        assert self.session is not None
        answer = self.exchange(self.sealed(message, payload_type))
        if answer is None:
            return None
        packet = wire.parse_rmcp_plus(answer, self.session.suite.icv_length)
        return self.session.decrypt(packet.payload)

    def command(self, netfn: int, cmd: int, data: bytes = b"") -> tuple[int, bytes]:
        """(completion code, data) of one IPMI command in the session."""
        answer = self.request(ipmi_request(netfn, cmd, data))
        if answer is None:
            raise TimeoutError(f"no answer to netfn {netfn:#x} cmd {cmd:#x}")
        return answer[6], answer[7:-1]
