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
from quintupleo.bmc.ipmi.handshake import Handshake, SetupAborted
from quintupleo.bmc.ipmi.session import Session
from quintupleo.bmc.ipmi.sol import SolConsole
from quintupleo.bmc.logs import traffic
from quintupleo.bmc.metrics import Metrics
from quintupleo.bmc.throttle import LoginGuard, TokenBuckets
from quintupleo.model import Credentials

log = logging.getLogger(__name__)

_RAKP_HANDLERS = {
    wire.PAYLOAD_OPEN_SESSION_REQUEST: ("open_session", wire.PAYLOAD_OPEN_SESSION_RESPONSE),
    wire.PAYLOAD_RAKP1: ("rakp1", wire.PAYLOAD_RAKP2),
    wire.PAYLOAD_RAKP3: ("rakp3", wire.PAYLOAD_RAKP4),
}
# Traffic outside a session (discovery, session setup) from one source, per node: an ipmitool
# login is about six packets; more than this is a flood, dropped before it is read.
SETUP_RATE, SETUP_BURST = 200.0, 400.0
RAKP2_MAX_DELAY = 0.5     # slowing a guesser's RAKP 2 stays under ipmitool's 1 s retry


class IpmiEndpoint(asyncio.DatagramProtocol):
    """The IPMI LAN interface of one node's BMC."""

    def __init__(self, controller: NodeController, credentials: Credentials,
                 accounts: Accounts | None = None, session_timeout: float = 60.0,
                 guard: LoginGuard | None = None, metrics: Metrics | None = None) -> None:
        self.controller = controller
        self.metrics = metrics
        # IPMI sends a GUID least significant byte first
        self.guid = uuid.UUID(controller.info.uuid).bytes[::-1]
        self.accounts = accounts or Accounts(credentials)
        self.handshake = Handshake(credentials, self.guid, session_timeout, self.accounts,
                                   guard, on_close=self._session_closed, report=self._refused)
        self.boot_parameters = context.BootParameters()
        self.transport: asyncio.DatagramTransport | None = None
        self.sol = SolConsole(controller, self._sendto, session_timeout)
        self.setup_rate = TokenBuckets(SETUP_RATE, SETUP_BURST)
        self._address: wire.Address | None = None    # the sender of the datagram being handled
        self.dropped = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _sendto(self, datagram: bytes, addr: wire.Address) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(datagram, addr)

    def _close_session(self, bmc_id: int) -> None:
        self.handshake.close(bmc_id)

    def _session_closed(self, session: Session) -> None:
        self.sol.session_closed(session.bmc_id)

    def datagram_received(self, data: bytes, addr: wire.Address) -> None:
        started = time.perf_counter()
        in_session = data[4:5] == b"\x06" and data[6:10] != b"\0\0\0\0"
        if not in_session and not self.setup_rate.allow(addr[0]):
            self.dropped += 1      # a flood: not even parsed
            self._counted("flood", "dropped")
            traffic.warning("IPMI flood", "node %s: %s sends more than %.0f packets/s outside "
                            "a session; the rest are dropped unread",
                            self.controller.info.name, addr[0], SETUP_RATE)
            return
        self._address = addr
        try:
            answer = self.handle(data, addr)
        except wire.Malformed as exc:
            self._drop(addr, str(exc))
            self._counted("malformed", "dropped")
            return
        except Exception:   # never let one datagram take the endpoint down
            log.exception("node %s: unexpected error on a datagram from %s",
                          self.controller.info.name, addr[0])
            return
        if answer is not None:
            self._sendto(answer, addr)
        if self.metrics is not None:
            self.metrics.latency.labels("ipmi").observe(time.perf_counter() - started)

    def _refused(self, kind: str, source: str, reason: str) -> None:
        traffic.warning(f"IPMI {kind}", "node %s: IPMI %s from %s: %s",
                        self.controller.info.name, kind, source, reason)

    def _drop(self, addr: wire.Address, reason: str) -> None:
        self.dropped += 1
        traffic.warning("IPMI malformed", "node %s: dropped a packet from %s (%s)",
                        self.controller.info.name, addr[0], reason)

    # ---- packet handling -------------------------------------------------------------------
    def handle(self, datagram: bytes, addr: wire.Address) -> bytes | None:
        peer = f"{addr[0]}:{addr[1]}"
        kind = wire.rmcp_class(datagram)
        if kind == wire.CLASS_ASF:
            pong = wire.build_asf_pong(wire.parse_asf_ping(datagram))
            self._counted("presence ping", "ok")
            return pong
        if kind != wire.CLASS_IPMI:
            raise wire.Malformed(f"RMCP class {kind:#x}")
        if wire.session_auth_type(datagram) == wire.AUTH_RMCP_PLUS:
            return self._rmcp_plus(datagram, addr)
        return self._sessionless(datagram, peer)

    def _sessionless(self, datagram: bytes, peer: str) -> bytes | None:
        """IPMI 1.5 framing: only the pre-session discovery commands, unauthenticated."""
        packet = wire.parse_rmcp15(datagram)
        if packet.session_id != 0 or datagram[4] != wire.AUTH_NONE:
            raise wire.Malformed("IPMI 1.5 sessions are not offered")
        request = wire.parse_ipmi_request(packet.message)
        return wire.build_rmcp15(self._execute(None, peer, request))

    def _rmcp_plus(self, datagram: bytes, addr: wire.Address) -> bytes | None:
        peer = f"{addr[0]}:{addr[1]}"
        payload_type = datagram[5] & 0x3F if len(datagram) > 5 else -1
        if payload_type in _RAKP_HANDLERS:
            packet = wire.parse_rmcp_plus(datagram)
            if packet.session_id != 0 or packet.authenticated or packet.encrypted:
                raise wire.Malformed("session setup must be outside a session")
            method, answer_type = _RAKP_HANDLERS[payload_type]
            try:
                answer = getattr(self.handshake, method)(packet.payload, addr[0])
            except SetupAborted:
                self._counted(method, "aborted")
                return None
            self._counted(method, "ok" if answer[1] == 0 else "refused")
            reply = wire.build_rmcp_plus(answer_type, 0, 0, answer)
            if answer_type != wire.PAYLOAD_RAKP2 or answer[1] != 0:
                return reply
            loop = asyncio.get_running_loop()
            # a RAKP 2 left unanswered is a failed login (ipmitool says nothing when the hash
            # does not match its password): look when its setup times out
            loop.call_later(self.handshake.SETUP_TIMEOUT + 0.1, self.handshake.expire)
            delay = self.handshake.guard.delay(addr[0], RAKP2_MAX_DELAY)
            if delay:   # a guesser waits for each hash
                loop.call_later(delay, self._sendto, reply, addr)
                return None
            return reply
        if payload_type not in (wire.PAYLOAD_IPMI, wire.PAYLOAD_SOL):
            raise wire.Malformed(f"payload type {payload_type:#x} not supported")
        session_id = int.from_bytes(datagram[6:10], "little")
        # pre-session discovery (ipmitool asks for cipher suites so)
        if session_id == 0 and payload_type == wire.PAYLOAD_IPMI:
            packet = wire.parse_rmcp_plus(datagram)
            if packet.authenticated or packet.encrypted:
                raise wire.Malformed("authenticated packet outside a session")
            request = wire.parse_ipmi_request(packet.payload)
            return wire.build_rmcp_plus(wire.PAYLOAD_IPMI, 0, 0,
                                        self._execute(None, peer, request))
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
            self._counted("SOL", "ok" if ack is None or not ack[3] else "refused")
            return session.seal(ack, wire.PAYLOAD_SOL) if ack is not None else None
        request = wire.parse_ipmi_request(session.decrypt(packet.payload))
        return session.seal(self._execute(session, peer, request))

    def _execute(self, session: Session | None, peer: str, request: wire.IpmiRequest) -> bytes:
        """Run one command; its response message."""
        code, data = commands.execute(self._context(session, peer), request.netfn, request.cmd,
                                      request.data)
        known = commands.COMMANDS.get((request.netfn, request.cmd))
        self._counted(known.handler.__name__ if known else "unknown",
                      "ok" if code == 0 else f"{code:#04x}")
        return wire.build_ipmi_response(request, code, data)

    def _counted(self, command: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.requests.labels("ipmi", command, outcome).inc()

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
