"""Byte layouts of RMCP, ASF, IPMI 1.5 and RMCP+ (IPMI 2.0) packets and of IPMI messages.

Pure functions: parse raises Malformed, build returns bytes. No crypto and no state here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

RMCP_VERSION = 0x06
CLASS_ASF = 0x06
CLASS_IPMI = 0x07
ASF_IANA = 4542
ASF_PING = 0x80
ASF_PONG = 0x40

AUTH_NONE = 0x00
AUTH_RMCP_PLUS = 0x06

PAYLOAD_IPMI = 0x00
PAYLOAD_SOL = 0x01
PAYLOAD_OPEN_SESSION_REQUEST = 0x10
PAYLOAD_OPEN_SESSION_RESPONSE = 0x11
PAYLOAD_RAKP1 = 0x12
PAYLOAD_RAKP2 = 0x13
PAYLOAD_RAKP3 = 0x14
PAYLOAD_RAKP4 = 0x15

Address = tuple[Any, ...]   # a UDP peer as asyncio gives it: (host, port[, flow, scope])


class Malformed(ValueError):
    """The bytes are not a packet we can read; the packet is dropped without an answer."""


@dataclass(frozen=True)
class Rmcp15:
    """An IPMI 1.5 session wrapper (we only take it unauthenticated, outside a session)."""

    sequence: int
    session_id: int
    message: bytes


@dataclass(frozen=True)
class RmcpPlus:
    """An IPMI 2.0 session wrapper; `header` and `trailer` are kept for the integrity check."""

    encrypted: bool
    authenticated: bool
    payload_type: int
    session_id: int
    sequence: int
    payload: bytes
    signed: bytes          # from the auth type byte through the trailer's next-header byte
    auth_code: bytes       # the integrity check value (empty when not authenticated)


@dataclass(frozen=True)
class IpmiRequest:
    rs_addr: int
    netfn: int
    rs_lun: int
    rq_addr: int
    rq_seq: int
    rq_lun: int
    cmd: int
    data: bytes


def checksum(data: bytes) -> int:
    return (-sum(data)) & 0xFF


def rmcp_class(datagram: bytes) -> int:
    if len(datagram) < 4 or datagram[0] != RMCP_VERSION:
        raise Malformed("not RMCP")
    return datagram[3] & 0x1F


def parse_asf_ping(datagram: bytes) -> int:
    """Return the ping's message tag."""
    if len(datagram) < 12:
        raise Malformed("short ASF message")
    iana, kind, tag = struct.unpack_from(">IBB", datagram, 4)
    if iana != ASF_IANA or kind != ASF_PING:
        raise Malformed("not an ASF presence ping")
    return int(tag)


def build_asf_pong(tag: int) -> bytes:
    data = struct.pack(">II", ASF_IANA, 0) + bytes([0x81, 0x00]) + bytes(6)
    return bytes([RMCP_VERSION, 0, 0xFF, CLASS_ASF]) + struct.pack(
        ">IBBBB", ASF_IANA, ASF_PONG, tag, 0, len(data)) + data


def session_auth_type(datagram: bytes) -> int:
    if len(datagram) < 5:
        raise Malformed("no session header")
    return datagram[4] & 0x0F


def parse_rmcp15(datagram: bytes) -> Rmcp15:
    if len(datagram) < 14:
        raise Malformed("short IPMI 1.5 packet")
    auth_type, sequence, session_id = struct.unpack_from("<BII", datagram, 4)
    offset = 13
    if auth_type != AUTH_NONE:
        offset += 16   # an auth code we do not accept anyway
    if len(datagram) <= offset:
        raise Malformed("short IPMI 1.5 packet")
    length = datagram[offset]
    message = datagram[offset + 1: offset + 1 + length]
    if len(message) != length:
        raise Malformed("IPMI 1.5 length mismatch")
    return Rmcp15(sequence, session_id, message)


def build_rmcp15(message: bytes) -> bytes:
    """An unauthenticated, sessionless IPMI 1.5 packet (answers to pre-session requests)."""
    return bytes([RMCP_VERSION, 0, 0xFF, CLASS_IPMI, AUTH_NONE]) + struct.pack(
        "<IIB", 0, 0, len(message)) + message


def parse_rmcp_plus(datagram: bytes, auth_code_length: int = 0) -> RmcpPlus:
    """Split an RMCP+ packet; `auth_code_length` is the session's ICV size if authenticated."""
    if len(datagram) < 16:
        raise Malformed("short RMCP+ packet")
    payload_type = datagram[5]
    if payload_type & 0x3F == 0x02:
        raise Malformed("OEM payloads are not supported")
    session_id, sequence, length = struct.unpack_from("<IIH", datagram, 6)
    payload = datagram[16:16 + length]
    if len(payload) != length:
        raise Malformed("RMCP+ payload length mismatch")
    authenticated = bool(payload_type & 0x40)
    signed, auth_code = b"", b""
    if authenticated:
        if not auth_code_length:
            raise Malformed("authenticated packet outside a session")
        trailer = datagram[16 + length:]
        if len(trailer) < 2 + auth_code_length:
            raise Malformed("short RMCP+ trailer")
        auth_code = trailer[-auth_code_length:]
        signed = datagram[4:len(datagram) - auth_code_length]
        pad_length, next_header = signed[-2], signed[-1]
        if next_header != 0x07 or len(trailer) != pad_length + 2 + auth_code_length:
            raise Malformed("bad RMCP+ trailer")
    return RmcpPlus(bool(payload_type & 0x80), authenticated, payload_type & 0x3F, session_id,
                    sequence, payload, signed, auth_code)


def build_rmcp_plus(payload_type: int, session_id: int, sequence: int, payload: bytes,
                    encrypted: bool = False, authenticated: bool = False) -> bytes:
    """An RMCP+ packet without its auth code; when authenticated, the integrity pad, pad length
    and next header are included, and the caller appends the auth code over bytes [4:]."""
    kind = payload_type | (0x80 if encrypted else 0) | (0x40 if authenticated else 0)
    packet = bytes([RMCP_VERSION, 0, 0xFF, CLASS_IPMI, AUTH_RMCP_PLUS, kind]) + struct.pack(
        "<IIH", session_id, sequence, len(payload)) + payload
    if authenticated:
        pad = (4 - (len(packet) - 4 + 2) % 4) % 4
        packet += b"\xff" * pad + bytes([pad, 0x07])
    return packet


def parse_ipmi_request(message: bytes) -> IpmiRequest:
    if len(message) < 7:
        raise Malformed("short IPMI message")
    if checksum(message[:2]) != message[2] or checksum(message[3:-1]) != message[-1]:
        raise Malformed("bad IPMI checksum")
    return IpmiRequest(rs_addr=message[0], netfn=message[1] >> 2, rs_lun=message[1] & 3,
                       rq_addr=message[3], rq_seq=message[4] >> 2, rq_lun=message[4] & 3,
                       cmd=message[5], data=message[6:-1])


def build_ipmi_response(request: IpmiRequest, completion: int, data: bytes = b"") -> bytes:
    head = bytes([request.rq_addr, ((request.netfn | 1) << 2) | request.rq_lun])
    body = bytes([request.rs_addr, (request.rq_seq << 2) | request.rs_lun, request.cmd,
                  completion]) + data
    return head + bytes([checksum(head)]) + body + bytes([checksum(body)])
