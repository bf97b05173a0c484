"""Lab nodes (QEMU processes on this machine) as a backend.

Power mapping: on -> start QEMU with the override's boot order (`-boot once=` for a one-time
override); off -> kill (a hard power-off); soft off -> ACPI power button (QMP
system_powerdown; firmware alone ignores it, as on hardware); reset -> QMP system_reset, or a
restart of QEMU when an override must take effect; cycle -> off then on; diagnostic interrupt
-> QMP inject-nmi. A node is on while its QEMU runs. Reads cost no QMP call: a process check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from qemu.qmp import QMPClient
from qemu.qmp.error import QMPError

from quintupleo.backends.base import Backend
from quintupleo.backends.qemu.machine import Machine
from quintupleo.errors import BackendError, NotInPresentState
from quintupleo.lab.layout import Lab
from quintupleo.model import BootOverride, NodeInfo, Observation, PowerAction, PowerState

log = logging.getLogger(__name__)

CONSOLE_ATTACH_WAIT = 2.0   # seconds a starting node waits, paused, for its console client


class QemuBackend(Backend):
    name = "qemu"
    settle_poll = 0.0
    has_console = True

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.machines = {node.name: Machine(lab, node) for node in lab.nodes}
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="qemu")
        self._console_wanted: set[str] = set()              # nodes a console client waits on
        self._console_attached: dict[str, asyncio.Event] = {}

    async def discover(self) -> list[NodeInfo]:
        return [NodeInfo(id=n.name, name=n.name, uuid=n.uuid, macs=(n.mac,), cpus=n.cpus,
                         memory_mb=n.memory_mb, local_gb=n.disk_gb,
                         extra={"lab": self.lab.name, "boot_mode": "bios",
                                **({"profile": n.role} if n.role else {})})
                for n in self.lab.nodes]

    async def observe(self) -> dict[str, Observation]:
        def read() -> dict[str, Observation]:   # PID files and /proc: off the event loop
            return {name: Observation(PowerState.ON if m.running() else PowerState.OFF)
                    for name, m in self.machines.items()}
        return await self._blocking(read)

    async def _blocking(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _qmp(self, machine: Machine, command: str) -> None:
        client = QMPClient(machine.node.name)
        try:
            await asyncio.wait_for(client.connect(str(machine.qmp_socket)), 5)
            await asyncio.wait_for(client.execute(command), 5)
        except (OSError, QMPError, TimeoutError) as exc:
            raise BackendError(f"node {machine.node.name}: QMP {command}: {exc}") from None
        finally:
            await client.disconnect()

    async def power(self, node_id: str, action: PowerAction, boot: BootOverride,
                    media: str | None = None) -> None:
        machine = self.machines[node_id]
        running = await self._blocking(machine.running)
        if action is PowerAction.ON:
            if not running:
                await self._start(machine, boot)
        elif action is PowerAction.OFF:
            await self._blocking(machine.kill)
        elif not running:
            raise NotInPresentState(f"node {node_id} is off")
        elif action is PowerAction.SOFT_OFF:
            await self._qmp(machine, "system_powerdown")
        elif action is PowerAction.DIAG_INTERRUPT:
            await self._qmp(machine, "inject-nmi")
        elif action is PowerAction.RESET and not boot.active:
            await self._qmp(machine, "system_reset")
        else:   # a cycle, or a reset whose boot device is chosen: QEMU starts again
            await self._blocking(machine.kill)
            await self._start(machine, boot)
        log.debug("node %s: %s done", node_id, action.value)

    async def _start(self, machine: Machine, boot: BootOverride) -> None:
        """Start QEMU paused, let a waiting console attach (so it sees the whole boot), run."""
        attached = self._console_attached.setdefault(machine.node.name, asyncio.Event())
        attached.clear()
        await self._blocking(machine.start, boot)
        if machine.node.name in self._console_wanted:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(attached.wait(), CONSOLE_ATTACH_WAIT)
        await self._qmp(machine, "cont")

    async def open_console(self, node_id: str) -> tuple[Any, Any]:
        """Waits for the node to have a console (it is off, or restarting), then connects."""
        socket = str(self.machines[node_id].console_socket)
        while True:   # a stale socket of a killed QEMU refuses the connection: try again
            try:
                streams = await asyncio.open_unix_connection(socket)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            self._console_attached.setdefault(node_id, asyncio.Event()).set()
            return streams

    def want_console(self, node_id: str, wanted: bool) -> None:
        if wanted:
            self._console_wanted.add(node_id)
        else:
            self._console_wanted.discard(node_id)

    def supports(self, action: PowerAction) -> bool:
        return action is not PowerAction.SOFT_RESET   # no guest-agnostic graceful restart

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
