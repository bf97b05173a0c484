"""A node's serial console over a WebSocket (ComputerSystem SerialConsole.WebSocket).

Output goes to the client as binary messages; what the client sends is typed on the console.
The console follows the node: while it is off or restarting, the socket stays open and output
resumes when the node runs again. One console client at a time (IPMI SOL included): the node
has one serial port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import WSMsgType, web

from quintupleo.bmc.controller import NodeController

log = logging.getLogger(__name__)


async def serve_console(socket: web.WebSocketResponse, controller: NodeController) -> None:
    node = controller.info
    controller.want_console(True)
    writer: asyncio.StreamWriter | None = None

    async def output() -> None:
        nonlocal writer
        while not socket.closed:
            reader, writer = await controller.open_console()
            try:
                while chunk := await reader.read(4096):
                    await socket.send_bytes(chunk)
            except (OSError, ConnectionResetError):
                pass
            finally:
                writer.close()
                writer = None

    pump = asyncio.get_running_loop().create_task(output())
    log.info("node %s: WebSocket console opened", node.name)
    try:
        async for message in socket:
            if message.type in (WSMsgType.BINARY, WSMsgType.TEXT) and writer is not None:
                data = message.data if message.type is WSMsgType.BINARY else \
                    message.data.encode()
                writer.write(data)
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump
        controller.want_console(False)
        log.info("node %s: WebSocket console closed", node.name)
