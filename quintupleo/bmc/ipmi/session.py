"""RMCP+ sessions: cipher suites, their keys, integrity and confidentiality (the handshake
that makes them is handshake.py's).

Offered: cipher suite 17 (RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128) and cipher suite 3
(RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128). Spec: IPMI v2.0 rev 1.1, sections 13.17-13.31.
"""

from __future__ import annotations

import hmac
import os
import struct
import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from quintupleo.bmc.ipmi import wire


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
    source: str = ""                 # the console's address
    account_privilege: int = 0       # the account's limit, checked once the password is proved
    rakp3: bytes = b""               # the RAKP 3 that opened it, and our answer (sent again
    rakp4: bytes = b""               # if the console repeats it)
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
