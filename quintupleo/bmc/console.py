"""A node's serial console as its one client (IPMI SOL or the Redfish WebSocket) has it.

The node has one serial port, so one client at a time (the controller refuses a second). The
backend's console is pumped to the client across the node's power-offs and restarts: while the
node has none, it is reopened (the backend paces it); what the client types goes to the
connection of the moment, and is dropped while there is none, as on a serial line with nothing
at its other end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from quintupleo.errors import BmcError

log = logging.getLogger(__name__)

RECONNECT = 0.5   # seconds after a failed attempt to reach the console

Opener = Callable[[], Awaitable[tuple[Any, Any]]]      # the backend's (reader, writer)
Deliver = Callable[[bytes], Awaitable[None]]           # output to the client, in order


class NodeConsole:
    """One client's attachment to a node's console, from `start` until `close`."""

    def __init__(self, node: str, client: str, open_console: Opener, deliver: Deliver,
                 chunk: int, on_close: Callable[[NodeConsole], None]) -> None:
        self.node, self.client = node, client
        self._open, self._deliver, self._chunk = open_console, deliver, chunk
        self._on_close = on_close
        self._writer: Any = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._pump())

    def type(self, data: bytes) -> None:
        """Keystrokes from the client."""
        if data and self._writer is not None:
            self._writer.write(data)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._drop()
        self._on_close(self)

    async def _pump(self) -> None:
        while True:
            try:
                reader, self._writer = await self._open()
            except (OSError, BmcError):
                await asyncio.sleep(RECONNECT)
                continue
            log.debug("node %s: %s connected to the console", self.node, self.client)
            try:
                while chunk := await reader.read(self._chunk):
                    await self._deliver(chunk)
            except OSError:
                pass
            finally:
                self._drop()
            # the node went off or restarts: the next open waits for it to run again

    def _drop(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()
