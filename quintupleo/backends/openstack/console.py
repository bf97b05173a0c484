"""A Nova server's serial console: the compute API's `serial` remote console, a WebSocket through
nova-serialproxy to the guest's serial port, as the (reader, writer) pair front ends expect.

Nova gives a fresh URL (a one-server token) per connection. While the server is off or
restarting the proxy accepts the WebSocket and closes it at once (nothing listens on the guest's
port): the caller reconnects, paced here, so a console follows the node through reboots and
rescues. What the guest wrote before the connection (a QEMU's serial port keeps nothing for a
late client) comes first, from the compute API's console log: libvirt's Nova starts that log
afresh with each QEMU (append off), so it holds this boot's output so far. The compute API
removes control characters from that log (all below 0x20 but tab and newline: carriage returns,
escape sequences' ESC); the replay puts carriage returns back before newlines, as a terminal
needs them. The few bytes both hold (written between the connection and the log read) are
sent once: they are matched as the log holds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import aiohttp

log = logging.getLogger(__name__)

RETRY = 1.0            # seconds between attempts to connect (one compute API call each)
LIVE_AFTER = 1.0       # a proxy socket still open after this has reached the guest's port
UNAVAILABLE = 400      # the compute host has no serial consoles (ConsoleTypeUnavailable)
NOT_IMPLEMENTED = 501  # the hypervisor driver has none
PROBE = 16             # fewest bytes that must agree for an overlap (unless the data is shorter)
RUN_ON = 6             # ... or that run on from the log's very end
OVERLAP_WINDOW = 4096  # the log's tail searched: ~0.35 s of output at 115200 baud
QUIET = 0.25           # a pause of the stream after which its few held bytes are judged
LOG_STRIPS = bytes(range(0x09)) + bytes(range(0x0B, 0x20))   # what the compute API's log drops


class ConsoleReader:
    """Reads a WebSocket's messages as a byte stream, after `replay`; b"" when it closed.

    The stream's first bytes may repeat the replay's last ones. Which, is decided once the stream
    has given PROBE bytes (as the log holds them) or has been quiet for QUIET: the serial port
    sends a byte at a time, and a lone carriage return or newline says nothing. Until then those
    bytes are held back, not sent twice."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse, replay: bytes = b"",
                 first: bytes = b"") -> None:
        self._socket = socket
        self._replay: bytes | None = replay or None   # until the overlap is known
        self._held = first                              # stream bytes while it is not
        self._repeat = b""                             # stream bytes the replay already sent
        self._pending = terminal(replay)
        if self._replay is None:
            self._pending, self._held = first, b""
        elif self._decided(final=False):
            self._pending += self._held_fresh()

    async def read(self, size: int = 4096) -> bytes:
        while not self._pending:
            try:
                async with asyncio.timeout(QUIET if self._replay is not None else None):
                    message = await self._socket.receive()
            except TimeoutError:   # the stream paused: decide with what it gave
                self._decided(final=True)
                self._pending = self._held_fresh()
                continue
            if message.type is aiohttp.WSMsgType.BINARY:
                data = bytes(message.data)
            elif message.type is aiohttp.WSMsgType.TEXT:
                data = str(message.data).encode()
            else:     # CLOSE, CLOSED, ERROR: the guest's port went away
                if self._replay is not None:
                    self._decided(final=True)
                    self._pending = self._held_fresh()
                    if self._pending:
                        continue
                return b""
            if self._replay is None:
                self._pending = self._fresh(data)
            else:
                self._held += data
                if self._decided(final=False):
                    self._pending = self._held_fresh()
        chunk, self._pending = self._pending[:size], self._pending[size:]
        return chunk

    def _decided(self, final: bool) -> bool:
        """Settle the overlap from the held bytes if they are enough (or `final`)."""
        assert self._replay is not None
        if not final and len(self._held.translate(None, LOG_STRIPS)) < PROBE:
            return False
        self._repeat = overlap(self._replay, self._held)
        self._replay = None
        return True

    def _held_fresh(self) -> bytes:
        held, self._held = self._held, b""
        return self._fresh(held)

    def _fresh(self, data: bytes) -> bytes:
        """`data` without what the replayed log already held."""
        if self._repeat:   # skip it, with the control bytes the log does not hold
            at = held = 0
            while at < len(data) and held < len(self._repeat):
                if data[at] in LOG_STRIPS:
                    at += 1
                elif data[at] == self._repeat[held]:
                    at, held = at + 1, held + 1
                else:
                    break
            self._repeat = self._repeat[held:] if at == len(data) else b""
            data = data[at:]
        return data


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


def terminal(log_text: bytes) -> bytes:
    """The compute API's console log as a terminal needs it: CR LF line ends."""
    return log_text.replace(b"\n", b"\r\n")


def overlap(replay: bytes, data: bytes) -> bytes:
    """The longest tail of the console log `replay` that the stream's first bytes `data` repeat
    (or run on from), compared as the log holds them (without control bytes). Fewer than PROBE
    bytes (the stream paused) count only where they reach the log's end: what was in flight
    when the log was read is its tail."""
    window = replay[-OVERLAP_WINDOW:]
    data = data.translate(None, LOG_STRIPS)
    if len(data) < PROBE:
        size = next((k for k in range(min(len(data), len(window)), 0, -1)
                     if window.endswith(data[:k])), 0)
        return window[-size:] if size and (size == len(data) or size >= RUN_ON) else b""
    at = window.find(data[:1])
    while at >= 0:
        size = min(len(data), len(window) - at)
        runs_on = at + size == len(window) and size >= RUN_ON   # the stream goes further
        if (size >= PROBE or runs_on) and window[at:at + size] == data[:size]:
            return window[at:]
        at = window.find(data[:1], at + 1)
    return b""


async def connect(url: str, earlier: Callable[[], Awaitable[bytes]]
                  ) -> tuple[ConsoleReader, ConsoleWriter]:
    """Open the WebSocket of a console URL Nova gave, then read what the guest wrote before
    (`earlier`, the console log); ConnectionError when it cannot be reached."""
    session = aiohttp.ClientSession()
    try:
        socket = await session.ws_connect(url, protocols=("binary",), heartbeat=30,
                                          timeout=aiohttp.ClientWSTimeout(ws_close=5))
    except (aiohttp.ClientError, TimeoutError) as exc:
        await session.close()
        raise ConnectionError(f"serial console: {type(exc).__name__}") from None
    try:
        first = await _live(socket)
        replay = await earlier()
    except BaseException:
        await socket.close()
        await session.close()
        raise
    return ConsoleReader(socket, replay, first), ConsoleWriter(socket, session)


async def _live(socket: aiohttp.ClientWebSocketResponse) -> bytes:
    """Wait until the proxy has reached the guest's port (it answers the upgrade first, then
    checks the token and connects): the first output, or b"" if the socket is still open after
    LIVE_AFTER. ConnectionError when the proxy closes it (the server is off or restarting)."""
    try:
        async with asyncio.timeout(LIVE_AFTER):
            message = await socket.receive()
    except TimeoutError:
        return b""
    if message.type is aiohttp.WSMsgType.BINARY:
        return bytes(message.data)
    if message.type is aiohttp.WSMsgType.TEXT:
        return str(message.data).encode()
    raise ConnectionError("serial console: the guest's port is not there (off or restarting)")


def unavailable(status: int | None) -> bool:
    """Whether a failed console request means the cloud offers no serial console at all."""
    return status in (UNAVAILABLE, NOT_IMPLEMENTED)

