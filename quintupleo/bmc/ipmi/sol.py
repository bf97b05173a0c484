"""IPMI Serial-over-LAN (IPMI v2.0 section 15): the node's serial console over an RMCP+ session.

One SOL payload instance per node. Once activated, console output travels to the client in
SOL packets (sequence 1..15, one outstanding, retried until acknowledged); the client's
keystrokes are written to the console and acknowledged. The console is the controller's
(bmc/console.py: one client per node, reconnected while the node is off or restarting), so
`sol activate` before `power on` shows the whole boot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from quintupleo.bmc.console import NodeConsole
from quintupleo.bmc.controller import NodeController
from quintupleo.bmc.ipmi import session as rmcp
from quintupleo.bmc.ipmi import wire
from quintupleo.bmc.logs import traffic

log = logging.getLogger(__name__)

PAYLOAD_SIZE = 200        # characters per SOL packet, both ways (told in Activate Payload)
RETRIES = 7               # SOL parameter 4: retry count ...
RETRY_INTERVAL = 0.5      # ... and interval (the parameter says 50 x 10 ms)
NACK = 0x40               # operation/status, BMC to console: the packet was not accepted

# SOL configuration parameters (IPMI v2.0 table 26-5), as Get SOL Configuration answers them
PARAMETERS = {
    0: bytes([0x00]),              # set in progress: set complete
    1: bytes([0x01]),              # SOL enabled
    2: bytes([0x02]),              # no forced encryption/authentication; privilege: user
    3: bytes([12, 60]),            # character accumulate interval (x5 ms), send threshold
    4: bytes([RETRIES, int(RETRY_INTERVAL * 100)]),
    5: bytes([0x0A]),              # non-volatile bit rate: 115200
    6: bytes([0x0A]),              # volatile bit rate: 115200
    7: bytes([0x01]),              # payload channel
}


class SolConsole:
    """The SOL payload of one node's IPMI endpoint."""

    def __init__(self, controller: NodeController,
                 send: Callable[[bytes, wire.Address], None], session_timeout: float = 60.0
                 ) -> None:
        self.controller = controller
        self._send = send                       # a sealed datagram to the client's address
        self.session_timeout = session_timeout  # a client silent this long is gone
        self.session: rmcp.Session | None = None
        self.address: wire.Address | None = None
        self._console: NodeConsole | None = None
        self._sequence = 0
        self._acked = asyncio.Event()
        self._outstanding = 0

    @property
    def active(self) -> bool:
        return self.session is not None

    def activate(self, session: rmcp.Session, address: wire.Address) -> None:
        """ConsoleInUse when another client (the Redfish WebSocket) has the console."""
        self._console = self.controller.attach_console(f"SOL from {address[0]}", self._deliver,
                                                       PAYLOAD_SIZE)
        self.session, self.address = session, address
        self._console.start()
        log.info("node %s: SOL activated by %s", self.controller.info.name, address[0])

    def deactivate(self) -> None:
        if self._console is not None:
            self._console.close()
        self.session = self.address = self._console = None
        log.info("node %s: SOL deactivated", self.controller.info.name)

    def session_closed(self, bmc_id: int) -> None:
        if self.session is not None and self.session.bmc_id == bmc_id:
            self.deactivate()

    # ---- client -> BMC -------------------------------------------------------------------
    def receive(self, session: rmcp.Session, payload: bytes) -> bytes | None:
        """One SOL packet from the client; the acknowledgement to send back, if any."""
        if session is not self.session or len(payload) < 4:
            return None
        sequence, acked, _accepted, _operation = payload[:4]
        if acked and acked == self._outstanding:
            self._acked.set()
        data = payload[4:]
        if sequence == 0:
            return None     # an acknowledgement only
        if len(data) > PAYLOAD_SIZE:    # more than Activate Payload allowed: not typed at all
            traffic.warning("SOL refused", "node %s: SOL packet of %d characters refused (at "
                            "most %d)", self.controller.info.name, len(data), PAYLOAD_SIZE)
            return bytes([0, sequence, 0, NACK])
        if self._console is not None:
            self._console.type(data)
        return bytes([0, sequence, len(data), 0])

    # ---- BMC -> client -------------------------------------------------------------------
    async def _deliver(self, data: bytes) -> None:
        self._sequence = self._sequence % 15 + 1
        self._outstanding = self._sequence
        packet = bytes([self._sequence, 0, 0, 0]) + data
        for _ in range(RETRIES + 1):
            if self.session is None or self.address is None:
                return
            self._acked.clear()
            self._send(self.session.seal(packet, wire.PAYLOAD_SOL), self.address)
            try:
                await asyncio.wait_for(self._acked.wait(), RETRY_INTERVAL)
                return
            except TimeoutError:
                continue
        if self.session is not None and (
                time.monotonic() - self.session.last_seen > self.session_timeout):
            log.info("node %s: SOL client gone (its session timed out); SOL deactivated",
                     self.controller.info.name)
            self.deactivate()
            return
        traffic.warning("SOL unacknowledged", "node %s: SOL client stopped acknowledging; "
                        "console output dropped", self.controller.info.name)
