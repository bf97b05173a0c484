"""One UDP endpoint per node: datagrams in, sessions and commands, datagrams out.

Everything here is synchronous inside the event loop: reads come from the controller's model
and actions only enqueue, so an answer never waits on a cloud.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from quintupleo.bmc.accounts import Accounts
from quintupleo.bmc.controller import NodeController
from quintupleo.bmc.ipmi import commands, context, wire
from quintupleo.bmc.ipmi.session import Handshake, Session, SetupAborted
from quintupleo.bmc.ipmi.sol import SolConsole
from quintupleo.model import Credentials

log = logging.getLogger(__name__)

_RAKP_HANDLERS = {
    wire.PAYLOAD_OPEN_SESSION_REQUEST: ("open_session", wire.PAYLOAD_OPEN_SESSION_RESPONSE),
    wire.PAYLOAD_RAKP1: ("rakp1", wire.PAYLOAD_RAKP2),
    wire.PAYLOAD_RAKP3: ("rakp3", wire.PAYLOAD_RAKP4),
}

_SETUP_REFUSALS = {
    0x01: "too many sessions", 0x02: "unknown session", 0x09: "invalid role",
    0x0D: "unknown or null user name", 0x0F: "wrong password (RAKP 3 check failed)",
    0x11: "no matching cipher suite (we offer 17 and 3)", 0x12: "illegal parameter",
}


class IpmiEndpoint(asyncio.DatagramProtocol):
    """The IPMI LAN interface of one node's BMC."""

    def __init__(self, controller: NodeController, credentials: Credentials,
                 accounts: Accounts | None = None, session_timeout: float = 60.0) -> None:
        self.controller = controller
        # IPMI sends a GUID least significant byte first
        self.guid = uuid.UUID(controller.info.uuid).bytes[::-1]
        self.accounts = accounts or Accounts(credentials)
        self.handshake = Handshake(credentials, self.guid, session_timeout, self.accounts)
        self.boot_parameters = context.BootParameters()
        self.transport: asyncio.DatagramTransport | None = None
        self.sol = SolConsole(controller, self._sendto)
        self._address: wire.Address | None = None    # the sender of the datagram being handled
        self.dropped = 0
        self._last_drop_log = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _sendto(self, datagram: bytes, addr: wire.Address) -> None:
        if self.transport is not None:
            self.transport.sendto(datagram, addr)

    def _close_session(self, bmc_id: int) -> None:
        self.sol.session_closed(bmc_id)
        self.handshake.close(bmc_id)

    def datagram_received(self, data: bytes, addr: wire.Address) -> None:
        self._address = addr
        try:
            answer = self.handle(data, f"{addr[0]}:{addr[1]}")
        except wire.Malformed as exc:
            self._drop(addr, str(exc))
            return
        except Exception:   # never let one datagram take the endpoint down
            log.exception("node %s: unexpected error on a datagram from %s",
                          self.controller.info.name, addr[0])
            return
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)

    def _refused(self, peer: str, reason: str) -> None:
        log.warning("node %s: session setup from %s refused: %s", self.controller.info.name,
                    peer.rsplit(":", 1)[0], reason)

    def _drop(self, addr: wire.Address, reason: str) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log > 10:   # a flood must not flood the log too
            self._last_drop_log = now
            log.warning("node %s: dropped a packet from %s (%s); %d dropped so far",
                        self.controller.info.name, addr[0], reason, self.dropped)

    # ---- packet handling -------------------------------------------------------------------
    def handle(self, datagram: bytes, peer: str) -> bytes | None:
        kind = wire.rmcp_class(datagram)
        if kind == wire.CLASS_ASF:
            return wire.build_asf_pong(wire.parse_asf_ping(datagram))
        if kind != wire.CLASS_IPMI:
            raise wire.Malformed(f"RMCP class {kind:#x}")
        if wire.session_auth_type(datagram) == wire.AUTH_RMCP_PLUS:
            return self._rmcp_plus(datagram, peer)
        return self._sessionless(datagram, peer)

    def _sessionless(self, datagram: bytes, peer: str) -> bytes | None:
        """IPMI 1.5 framing: only the pre-session discovery commands, unauthenticated."""
        packet = wire.parse_rmcp15(datagram)
        if packet.session_id != 0 or datagram[4] != wire.AUTH_NONE:
            raise wire.Malformed("IPMI 1.5 sessions are not offered")
        request = wire.parse_ipmi_request(packet.message)
        code, data = commands.execute(self._context(None, peer), request.netfn, request.cmd,
                                      request.data)
        return wire.build_rmcp15(wire.build_ipmi_response(request, code, data))

    def _rmcp_plus(self, datagram: bytes, peer: str) -> bytes | None:
        payload_type = datagram[5] & 0x3F if len(datagram) > 5 else -1
        if payload_type in _RAKP_HANDLERS:
            packet = wire.parse_rmcp_plus(datagram)
            if packet.session_id != 0 or packet.authenticated or packet.encrypted:
                raise wire.Malformed("session setup must be outside a session")
            method, answer_type = _RAKP_HANDLERS[payload_type]
            try:
                answer = getattr(self.handshake, method)(packet.payload)
            except SetupAborted as exc:
                self._refused(peer, str(exc))
                return None
            if answer[1] != 0:
                self._refused(peer, _SETUP_REFUSALS.get(answer[1], f"status {answer[1]:#04x}"))
            return wire.build_rmcp_plus(answer_type, 0, 0, answer)
        if payload_type not in (wire.PAYLOAD_IPMI, wire.PAYLOAD_SOL):
            raise wire.Malformed(f"payload type {payload_type:#x} not supported")
        session_id = int.from_bytes(datagram[6:10], "little")
        # pre-session discovery (ipmitool asks for cipher suites so)
        if session_id == 0 and payload_type == wire.PAYLOAD_IPMI:
            packet = wire.parse_rmcp_plus(datagram)
            if packet.authenticated or packet.encrypted:
                raise wire.Malformed("authenticated packet outside a session")
            request = wire.parse_ipmi_request(packet.payload)
            code, data = commands.execute(self._context(None, peer), request.netfn,
                                          request.cmd, request.data)
            return wire.build_rmcp_plus(wire.PAYLOAD_IPMI, 0, 0,
                                        wire.build_ipmi_response(request, code, data))
        session = self.handshake.get(session_id)
        if session is None or not session.active:
            raise wire.Malformed("no such session")
        packet = wire.parse_rmcp_plus(datagram, session.suite.icv_length)
        if not (packet.authenticated and packet.encrypted):
            raise wire.Malformed("unauthenticated or clear-text packet in a session")
        if not session.verify(packet):
            raise wire.Malformed("integrity check failed")
        if not session.accept_sequence(packet.sequence):
            raise wire.Malformed("replayed or stale sequence number")
        session.last_seen = time.monotonic()
        if payload_type == wire.PAYLOAD_SOL:
            ack = self.sol.receive(session, session.decrypt(packet.payload))
            return session.seal(ack, wire.PAYLOAD_SOL) if ack is not None else None
        request = wire.parse_ipmi_request(session.decrypt(packet.payload))
        code, data = commands.execute(self._context(session, peer), request.netfn, request.cmd,
                                      request.data)
        return session.seal(wire.build_ipmi_response(request, code, data))

    def _context(self, session: Session | None, peer: str) -> context.Context:
        host, port = self.transport.get_extra_info("sockname")[:2] if self.transport else (
            "", 623)
        return context.Context(self.controller, self.guid, self.boot_parameters, session,
                                self._close_session, peer, self.sol, self._address, port,
                                self.handshake.sessions, self.accounts, host)


async def listen(endpoint: IpmiEndpoint, address: str, port: int) -> asyncio.DatagramTransport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: endpoint,
                                                       local_addr=(address, port))
    return transport
