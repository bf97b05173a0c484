"""RMCP+ sessions: cipher suites, the RAKP exchange, integrity and confidentiality.

Offered: cipher suite 17 (RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128) and cipher suite 3
(RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128). Cipher suite 0, anonymous and null-user logins
are refused. Spec: IPMI v2.0 rev 1.1, sections 13.17-13.31.
"""

from __future__ import annotations

import hmac
import os
import struct
import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from quintupleo.bmc.accounts import IPMI_PRIVILEGE, Accounts
from quintupleo.bmc.ipmi import wire
from quintupleo.model import Credentials


@dataclass(frozen=True)
class CipherSuite:
    id: int
    auth_alg: int        # RAKP-HMAC-SHA1 = 1, RAKP-HMAC-SHA256 = 3
    integrity_alg: int   # HMAC-SHA1-96 = 1, HMAC-SHA256-128 = 4
    confidentiality_alg: int  # AES-CBC-128 = 1
    digest: str
    icv_length: int      # bytes of HMAC kept in RAKP 4 and in each packet's auth code

    def mac(self, key: bytes, data: bytes) -> bytes:
        return hmac.new(key, data, self.digest).digest()

    @property
    def record(self) -> bytes:
        """This suite's record in Get Channel Cipher Suites (IPMI v2.0 table 22-19)."""
        return bytes([0xC0, self.id, self.auth_alg, 0x40 | self.integrity_alg,
                      0x80 | self.confidentiality_alg])


SUITES = {
    17: CipherSuite(17, 3, 4, 1, "sha256", 16),
    3: CipherSuite(3, 1, 1, 1, "sha1", 12),
}
CIPHER_SUITE_RECORDS = b"".join(suite.record for suite in SUITES.values())

# Privilege levels (IPMI v2.0 section 6.8; Set Session Privilege Level): a session starts at
# User and may be raised.
CALLBACK, USER, OPERATOR, ADMINISTRATOR = 1, 2, 3, 4

# RMCP+ status codes (IPMI v2.0 table 13-15)
ST_OK = 0x00
ST_INSUFFICIENT_RESOURCES = 0x01
ST_INVALID_SESSION_ID = 0x02
ST_INVALID_ROLE = 0x09
ST_UNAUTHORIZED_NAME = 0x0D
ST_INVALID_ICV = 0x0F
ST_NO_CIPHER_SUITE_MATCH = 0x11
ST_ILLEGAL_PARAMETER = 0x12


@dataclass
class Session:
    bmc_id: int
    console_id: int
    suite: CipherSuite
    max_privilege: int
    privilege: int = USER
    active: bool = False
    rm: bytes = b""
    rc: bytes = b""
    role: int = 0
    username: bytes = b""
    key: bytes = field(default=b"", repr=False)   # Kuid: the account's password
    sik: bytes = b""
    k1: bytes = b""
    k2: bytes = b""
    last_seen: float = field(default_factory=time.monotonic)
    out_sequence: int = 0
    in_sequences: set[int] = field(default_factory=set)
    in_highest: int = 0

    # ---- key exchange -------------------------------------------------------------------
    def derive_keys(self, kuid: bytes) -> None:
        self.sik = self.suite.mac(kuid, self.rm + self.rc
                                  + bytes([self.role, len(self.username)]) + self.username)
        self.k1 = self.suite.mac(self.sik, b"\x01" * 20)
        self.k2 = self.suite.mac(self.sik, b"\x02" * 20)

    def rakp4_icv(self, guid: bytes) -> bytes:
        return self.suite.mac(self.sik, self.rm + struct.pack("<I", self.bmc_id) + guid)[
            :self.suite.icv_length]

    # ---- packets inside the session ----------------------------------------------------
    def accept_sequence(self, sequence: int) -> bool:
        """Sliding window of 32 (IPMI v2.0 6.12.13): reject zero, replays and stale numbers."""
        if sequence == 0 or sequence in self.in_sequences or sequence + 32 < self.in_highest:
            return False
        self.in_sequences.add(sequence)
        self.in_highest = max(self.in_highest, sequence)
        if len(self.in_sequences) > 64:
            self.in_sequences = {s for s in self.in_sequences if s + 32 >= self.in_highest}
        return True

    def verify(self, packet: wire.RmcpPlus) -> bool:
        expected = self.suite.mac(self.k1, packet.signed)[:self.suite.icv_length]
        return hmac.compare_digest(expected, packet.auth_code)

    def decrypt(self, payload: bytes) -> bytes:
        if len(payload) < 32 or len(payload) % 16:
            raise wire.Malformed("bad AES-CBC payload length")
        decryptor = Cipher(algorithms.AES(self.k2[:16]), modes.CBC(payload[:16])).decryptor()
        plain = decryptor.update(payload[16:]) + decryptor.finalize()
        pad = plain[-1]
        if pad >= 16 or plain[-1 - pad:-1] != bytes(range(1, pad + 1)):
            raise wire.Malformed("bad confidentiality padding")
        return plain[:-1 - pad]

    def encrypt(self, payload: bytes) -> bytes:
        pad = (16 - (len(payload) + 1) % 16) % 16
        iv = os.urandom(16)
        encryptor = Cipher(algorithms.AES(self.k2[:16]), modes.CBC(iv)).encryptor()
        return iv + encryptor.update(payload + bytes(range(1, pad + 1)) + bytes([pad])) \
            + encryptor.finalize()

    def seal(self, message: bytes, payload_type: int = wire.PAYLOAD_IPMI) -> bytes:
        """A whole RMCP+ datagram carrying an IPMI message (or a SOL packet), encrypted and
        authenticated."""
        self.out_sequence = (self.out_sequence + 1) & 0xFFFFFFFF or 1
        packet = wire.build_rmcp_plus(payload_type, self.console_id, self.out_sequence,
                                      self.encrypt(message), encrypted=True, authenticated=True)
        return packet + self.suite.mac(self.k1, packet[4:])[:self.suite.icv_length]


class SetupAborted(Exception):
    """The console ended the session setup itself; nothing is answered."""


class Handshake:
    """Open Session and RAKP 1-4 for one BMC endpoint; keeps that endpoint's sessions."""

    MAX_SESSIONS = 32

    def __init__(self, credentials: Credentials, guid: bytes, timeout: float = 60.0,
                 accounts: Accounts | None = None) -> None:
        self.credentials = credentials          # account 1 as this node has it
        self.accounts = accounts or Accounts(credentials)
        self.guid = guid
        self.timeout = timeout
        self.sessions: dict[int, Session] = {}

    def expire(self) -> None:
        now = time.monotonic()
        for bmc_id in [i for i, s in self.sessions.items() if now - s.last_seen > self.timeout]:
            del self.sessions[bmc_id]

    def get(self, bmc_id: int) -> Session | None:
        self.expire()
        return self.sessions.get(bmc_id)

    def close(self, bmc_id: int) -> None:
        self.sessions.pop(bmc_id, None)

    def open_session(self, payload: bytes) -> bytes:
        """Open Session Request (0x10) -> Open Session Response payload (0x11)."""
        if len(payload) < 32:
            raise wire.Malformed("short Open Session Request")
        tag, requested = payload[0], payload[1] & 0x0F
        console_id = struct.unpack_from("<I", payload, 4)[0]
        algorithms_offered = []
        for offset, kind in ((8, 0), (16, 1), (24, 2)):
            record = payload[offset:offset + 8]
            if record[0] != kind or record[3] != 8:
                return self._open_error(tag, ST_ILLEGAL_PARAMETER, console_id)
            algorithms_offered.append(record[4] & 0x3F)
        suite = next((s for s in SUITES.values() if algorithms_offered ==
                      [s.auth_alg, s.integrity_alg, s.confidentiality_alg]), None)
        if suite is None:   # cipher suite 0 (no auth) and everything else we do not offer
            return self._open_error(tag, ST_NO_CIPHER_SUITE_MATCH, console_id)
        if requested > ADMINISTRATOR:
            return self._open_error(tag, ST_INVALID_ROLE, console_id)
        self.expire()
        if len(self.sessions) >= self.MAX_SESSIONS:
            # Drop the oldest session that never completed RAKP, else refuse.
            idle = sorted((s for s in self.sessions.values() if not s.active),
                          key=lambda s: s.last_seen)
            if not idle:
                return self._open_error(tag, ST_INSUFFICIENT_RESOURCES, console_id)
            del self.sessions[idle[0].bmc_id]
        bmc_id = 0
        while bmc_id == 0 or bmc_id in self.sessions:
            bmc_id = int.from_bytes(os.urandom(4), "little")
        session = Session(bmc_id, console_id, suite, requested or ADMINISTRATOR)
        self.sessions[bmc_id] = session
        return bytes([tag, ST_OK, session.max_privilege, 0]) + struct.pack(
            "<II", console_id, bmc_id) + payload[8:32]

    @staticmethod
    def _open_error(tag: int, status: int, console_id: int) -> bytes:
        return bytes([tag, status, 0, 0]) + struct.pack("<I", console_id)

    def rakp1(self, payload: bytes) -> bytes:
        """RAKP Message 1 (0x12) -> RAKP Message 2 payload (0x13)."""
        if len(payload) < 28:
            raise wire.Malformed("short RAKP 1")
        tag = payload[0]
        bmc_id = struct.unpack_from("<I", payload, 4)[0]
        session = self.get(bmc_id)
        if session is None or session.active:
            return bytes([tag, ST_INVALID_SESSION_ID, 0, 0]) + bytes(4)
        role, name_length = payload[24], payload[27]
        username = payload[28:28 + name_length]
        error = None
        account = self.accounts.named(username.decode(errors="replace"), self.credentials)
        if len(username) != name_length or name_length > 16:
            error = ST_ILLEGAL_PARAMETER
        elif not username or account is None:
            error = ST_UNAUTHORIZED_NAME      # null user and anonymous logins are refused too
        elif not CALLBACK <= role & 0x0F <= IPMI_PRIVILEGE[account.role]:
            error = ST_INVALID_ROLE           # above the account's privilege limit
        if error is not None:
            self.close(bmc_id)
            return bytes([tag, error, 0, 0]) + struct.pack("<I", session.console_id)
        session.rm, session.rc = payload[8:24], os.urandom(16)
        assert account is not None
        session.role, session.username, session.key = role, username, account.credentials.key
        session.max_privilege = role & 0x0F
        session.last_seen = time.monotonic()
        auth_code = session.suite.mac(session.key, struct.pack(
            "<II", session.console_id, bmc_id) + session.rm + session.rc + self.guid
            + bytes([role, name_length]) + username)
        return bytes([tag, ST_OK, 0, 0]) + struct.pack("<I", session.console_id) + session.rc \
            + self.guid + auth_code

    def rakp3(self, payload: bytes) -> bytes:
        """RAKP Message 3 (0x14) -> RAKP Message 4 payload (0x15); the session becomes active
        only if the console proved it knows the password."""
        if len(payload) < 8:
            raise wire.Malformed("short RAKP 3")
        tag, status = payload[0], payload[1]
        bmc_id = struct.unpack_from("<I", payload, 4)[0]
        session = self.get(bmc_id)
        if session is None or session.active or not session.rc:
            return bytes([tag, ST_INVALID_SESSION_ID, 0, 0]) + bytes(4)
        if status != ST_OK:     # the console gave up: our RAKP 2 did not match its password
            self.close(bmc_id)
            raise SetupAborted(f"the console aborted with status {status:#04x} "
                               "(wrong password on its side)")
        expected = session.suite.mac(session.key, session.rc + struct.pack(
            "<I", session.console_id) + bytes([session.role, len(session.username)])
            + session.username)
        if not hmac.compare_digest(expected, payload[8:]):
            self.close(bmc_id)
            return bytes([tag, ST_INVALID_ICV, 0, 0]) + struct.pack("<I", session.console_id)
        session.derive_keys(session.key)
        session.active = True
        session.last_seen = time.monotonic()
        return bytes([tag, ST_OK, 0, 0]) + struct.pack("<I", session.console_id) \
            + session.rakp4_icv(self.guid)
