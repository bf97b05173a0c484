"""IPMI Serial-over-LAN (IPMI v2.0 section 15): the node's serial console over an RMCP+ session.

One SOL payload instance per node. Once activated, console output travels to the client in
SOL packets (sequence 1..15, one outstanding, retried until acknowledged); the client's
keystrokes are written to the console and acknowledged. The console comes from the backend
(a QEMU node's serial socket) and is reconnected while the node is off or restarting, so
`sol activate` before `power on` shows the whole boot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from quintupleo.bmc.controller import NodeController
from quintupleo.bmc.ipmi import session as rmcp
from quintupleo.bmc.ipmi import wire
from quintupleo.errors import BmcError

log = logging.getLogger(__name__)

PAYLOAD_SIZE = 200        # characters per SOL packet, both ways (told in Activate Payload)
RETRIES = 7               # SOL parameter 4: retry count ...
RETRY_INTERVAL = 0.5      # ... and interval (the parameter says 50 x 10 ms)
RECONNECT = 0.5           # after a failed attempt to reach the console
DEACTIVATING = 0x10       # BMC -> console status: SOL is being deactivated

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
                 send: Callable[[bytes, tuple], None]) -> None:
        self.controller = controller
        self._send = send                       # a sealed datagram to the client's address
        self.session: rmcp.Session | None = None
        self.address: tuple | None = None
        self._task: asyncio.Task | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._sequence = 0
        self._acked = asyncio.Event()
        self._outstanding = 0

    @property
    def active(self) -> bool:
        return self.session is not None

    def activate(self, session: rmcp.Session, address: tuple) -> None:
        self.session, self.address = session, address
        self.controller.want_console(True)
        self._task = asyncio.get_running_loop().create_task(self._pump())
        log.info("node %s: SOL activated by %s", self.controller.info.name, address[0])

    def deactivate(self) -> None:
        self.controller.want_console(False)
        if self._task is not None:
            self._task.cancel()
        if self._writer is not None:
            self._writer.close()
        self.session = self.address = self._task = self._writer = None
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
        if data and self._writer is not None:
            self._writer.write(data)
        return bytes([0, sequence, len(data), 0])

    # ---- BMC -> client -------------------------------------------------------------------
    async def _pump(self) -> None:
        while True:
            try:
                reader, self._writer = await self.controller.open_console()
            except (OSError, BmcError):
                await asyncio.sleep(RECONNECT)
                continue
            log.debug("node %s: SOL connected to the console", self.controller.info.name)
            writer = self._writer
            try:
                while chunk := await reader.read(PAYLOAD_SIZE):
                    await self._deliver(chunk)
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    writer.close()
                self._writer = None
            # the node went off or restarts: open_console waits for it to run again

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
        log.warning("node %s: SOL client stopped acknowledging; console output dropped",
                    self.controller.info.name)
