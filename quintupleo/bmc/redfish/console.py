"""A node's serial console over a WebSocket (ComputerSystem SerialConsole.WebSocket).

Output goes to the client as binary messages; what the client sends is typed on the console.
The console follows the node (bmc/console.py): while it is off or restarting, the socket stays
open and output resumes when the node runs again. One console client at a time (IPMI SOL
included): the node has one serial port.
"""

from __future__ import annotations

import logging

from aiohttp import WSMsgType, web

from quintupleo.bmc.console import NodeConsole

log = logging.getLogger(__name__)


async def serve_console(socket: web.WebSocketResponse, console: NodeConsole) -> None:
    """Until the client closes the socket; then the console is free again."""
    log.info("node %s: WebSocket console opened", console.node)
    try:
        async for message in socket:
            if message.type is WSMsgType.BINARY:
                console.type(message.data)
            elif message.type is WSMsgType.TEXT:
                console.type(message.data.encode())
    finally:
        console.close()
        log.info("node %s: WebSocket console closed", console.node)
