"""A Nova server's serial console: the compute API's `serial` remote console, a WebSocket through
nova-serialproxy to the guest's serial port, as the (reader, writer) pair front ends expect.

Nova gives a fresh URL (a one-server token) per connection. While the server is off or
restarting the proxy accepts the WebSocket and closes it at once (nothing listens on the guest's
port): the caller reconnects, paced here, so a console follows the node through reboots and
rescues. Output from before a connection is in the compute API's console log, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

log = logging.getLogger(__name__)

RETRY = 1.0        # seconds between attempts to connect (one compute API call each)
UNAVAILABLE = 400  # the compute host has no serial consoles (ConsoleTypeUnavailable)
NOT_IMPLEMENTED = 501


class ConsoleReader:
    """Reads a WebSocket's messages as a byte stream; b"" when it closed."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._pending = b""

    async def read(self, size: int = 4096) -> bytes:
        while not self._pending:
            message = await self._socket.receive()
            if message.type is aiohttp.WSMsgType.BINARY:
                self._pending = message.data
            elif message.type is aiohttp.WSMsgType.TEXT:
                self._pending = message.data.encode()
            else:     # CLOSE, CLOSED, ERROR: the guest's port went away
                return b""
        chunk, self._pending = self._pending[:size], self._pending[size:]
        return chunk


class ConsoleWriter:
    """Types on the console; writes are sent in order by one task."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse, session: aiohttp.ClientSession
                 ) -> None:
        self._socket, self._session = socket, session
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._sender = asyncio.get_running_loop().create_task(self._send())

    def write(self, data: bytes) -> None:
        self._queue.put_nowait(data)

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def _send(self) -> None:
        try:
            while (data := await self._queue.get()) is not None:
                with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
                    await self._socket.send_bytes(data)
        finally:
            with contextlib.suppress(Exception):
                await self._socket.close()
            await self._session.close()


async def connect(url: str) -> tuple[ConsoleReader, ConsoleWriter]:
    """Open the WebSocket of a console URL Nova gave; OSError when it cannot be reached."""
    session = aiohttp.ClientSession()
    try:
        socket = await session.ws_connect(url, protocols=("binary",), heartbeat=30,
                                          timeout=aiohttp.ClientWSTimeout(ws_close=5))
    except (aiohttp.ClientError, TimeoutError) as exc:
        await session.close()
        raise ConnectionError(f"serial console: {type(exc).__name__}") from None
    return ConsoleReader(socket), ConsoleWriter(socket, session)


def unavailable(status: int | None) -> bool:
    """Whether a failed console request means the cloud offers no serial console at all."""
    return status in (UNAVAILABLE, NOT_IMPLEMENTED)

