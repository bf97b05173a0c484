"""A running node's QMP connection: the commands the BMC sends, and the run state it follows.

QEMU serves one QMP client per socket, so a node has one connection while it runs, shared by
every command (QMP matches replies by id). Its run state is read once on connecting and again
whenever QEMU announces a change (STOP, RESUME, RESET, SHUTDOWN, GUEST_PANICKED events), so a
poll costs nothing and a guest that panics or stops on an error is seen without asking.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from qemu.qmp import QMPClient, Runstate
from qemu.qmp.error import QMPError

from quintupleo.errors import BackendError

log = logging.getLogger(__name__)

TIMEOUT = 5.0
STATE_EVENTS = {"STOP", "RESUME", "RESET", "SHUTDOWN", "GUEST_PANICKED"}


class Monitor:
    def __init__(self, node: str, socket: Path) -> None:
        self.node = node
        self.socket = socket
        self.status: str | None = None     # QMP's run state: running, paused, shutdown, ...
        self._client = QMPClient(node)
        self._follower: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._client.runstate is Runstate.RUNNING

    async def connect(self) -> None:
        try:
            await asyncio.wait_for(self._client.connect(str(self.socket)), TIMEOUT)
        except (OSError, QMPError, TimeoutError) as exc:
            await self._client.disconnect()
            raise BackendError(f"node {self.node}: QMP: {exc}") from None
        await self._read_status()
        self._follower = asyncio.create_task(self._follow(), name=f"qmp-events-{self.node}")

    async def execute(self, command: str, **arguments: Any) -> Any:
        try:
            return await asyncio.wait_for(self._client.execute(command, arguments or None),
                                          TIMEOUT)
        except (OSError, QMPError, TimeoutError) as exc:
            raise BackendError(f"node {self.node}: QMP {command}: {exc}") from None

    async def _read_status(self) -> None:
        self.status = (await self.execute("query-status"))["status"]

    async def _follow(self) -> None:
        async for event in self._client.events:
            if event["event"] == "SHUTDOWN":
                self.status = "shutdown"     # QEMU ends now: no status to ask for
            elif event["event"] in STATE_EVENTS:
                with contextlib.suppress(BackendError):
                    await self._read_status()
                log.debug("node %s: QMP %s, now %s", self.node, event["event"], self.status)

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
        # disconnect() raises what ended the connection (EOFError when QEMU exited on its own):
        # closing a connection to a QEMU that is gone is not an error
        with contextlib.suppress(Exception):
            await self._client.disconnect()
