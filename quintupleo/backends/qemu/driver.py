"""Lab nodes (QEMU processes on this machine) as a backend.

Power mapping: on -> start QEMU with the override's boot order; off -> kill (a hard power-off);
soft off -> ACPI power button (QMP system_powerdown; firmware alone ignores it, as on
hardware); reset -> the boot order set by QMP (each device's bootindex), then system_reset,
with no restart; cycle -> off then on; diagnostic interrupt -> QMP inject-nmi.

A one-time override takes a fresh start: QEMU fixes the boot order the firmware reads at the
start's reset, so it can be put back to the usual order before the guest runs, and any later
reboot boots the disk. After a warm reset there is no such moment (SeaBIOS resets a second
time on a reboot and reads the order then).

A node is on while its QEMU runs and its QMP run state (monitor.py: read on connecting, again
on each state event) says so; a guest stopped by an internal error or a panic is on with a
fault (QEMU keeps it, as a hung server stays powered).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from quintupleo.backends.base import Backend
from quintupleo.backends.qemu.machine import USUAL_ORDER, Machine, MachineSpec, boot_order
from quintupleo.backends.qemu.monitor import Monitor
from quintupleo.errors import BackendError, NotInPresentState
from quintupleo.images.media import fetch
from quintupleo.model import (
    PLAIN_MACHINE,
    BootOverride,
    MachineSettings,
    NodeInfo,
    Observation,
    PowerAction,
    PowerState,
)

log = logging.getLogger(__name__)

CONSOLE_ATTACH_WAIT = 2.0   # seconds a starting node waits, paused, for its console client
FAULTS = {"internal-error": "QEMU stopped the guest after an internal error",
          "guest-panicked": "the guest panicked", "io-error": "a disk I/O error stopped it"}


class QemuBackend(Backend):
    name = "qemu"
    settle_poll = 0.0
    has_console = True
    has_media = True
    has_volume_disks = True

    def __init__(self, machines: list[MachineSpec], media_max_bytes: int = 4 << 30) -> None:
        self.machines = {spec.name: Machine(spec) for spec in machines}
        self.media_max_bytes = media_max_bytes
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="qemu")
        self._monitors: dict[str, Monitor] = {}           # running nodes' QMP connections
        self._connecting = {name: asyncio.Lock() for name in self.machines}
        self._console_wanted: set[str] = set()              # nodes a console client waits on
        self._console_attached: dict[str, asyncio.Event] = {}

    async def discover(self) -> list[NodeInfo]:
        hardware = await self._blocking(   # dpkg-query: off the event loop
            lambda: {name: m.hardware() for name, m in self.machines.items()})
        return [NodeInfo(id=n.name, name=n.name, uuid=n.uuid, macs=(n.mac,), cpus=n.cpus,
                         memory_mb=n.memory_mb, local_gb=n.disk_gb,
                         extra={**n.extra, "boot_mode": n.firmware},
                         hardware=hardware[n.name])
                for n in (machine.node for machine in self.machines.values())]

    async def observe(self) -> dict[str, Observation]:
        running = await self._blocking(   # PID files and /proc: off the event loop
            lambda: [name for name, m in self.machines.items() if m.running()])
        for name in set(self._monitors) - set(running):
            await self._forget(name)
        states = await asyncio.gather(*(self._status(self.machines[n]) for n in running))
        observations = {name: Observation(PowerState.OFF) for name in self.machines}
        for name, status in zip(running, states, strict=True):
            observations[name] = Observation(
                PowerState.OFF if status == "shutdown" else PowerState.ON,
                fault=FAULTS.get(status or ""))
        return observations

    async def _status(self, machine: Machine) -> str | None:
        """QMP's run state; None while QMP does not answer (just started, or ending)."""
        try:
            return (await self._monitor(machine)).status
        except BackendError:
            return None

    async def _blocking(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _monitor(self, machine: Machine) -> Monitor:
        """The running node's QMP connection, made when first needed after a start."""
        name = machine.node.name
        async with self._connecting[name]:
            monitor = self._monitors.get(name)
            if monitor is None or not monitor.connected:
                if monitor is not None:
                    await monitor.close()
                monitor = Monitor(name, machine.qmp_socket)
                await monitor.connect()
                self._monitors[name] = monitor
            return monitor

    async def _forget(self, name: str) -> None:
        monitor = self._monitors.pop(name, None)
        if monitor is not None:
            await monitor.close()

    async def _qmp(self, machine: Machine, command: str, **arguments: Any) -> Any:
        return await (await self._monitor(machine)).execute(command, **arguments)

    async def _set_boot_order(self, machine: Machine, order: tuple[str, ...]) -> None:
        """Each device's bootindex; through free numbers first, since QEMU refuses two devices
        with the same index even for a moment."""
        for offset in (100, 1):
            for number, device in enumerate(order, offset):
                await self._qmp(machine, "qom-set", path=f"/machine/peripheral/{device}",
                                property="bootindex", value=number)

    async def _kill(self, machine: Machine) -> None:
        await self._forget(machine.node.name)
        await self._blocking(machine.kill)

    async def power(self, node_id: str, action: PowerAction, boot: BootOverride,
                    media: str | None = None,
                    settings: MachineSettings = PLAIN_MACHINE) -> None:
        machine = self.machines[node_id]
        running = await self._blocking(machine.running)
        once = boot.active and not boot.persistent
        if action is PowerAction.ON:
            if not running:
                await self._start(machine, boot, media, settings)
        elif action is PowerAction.OFF:
            await self._kill(machine)
        elif not running:
            raise NotInPresentState(f"node {node_id} is off")
        elif action is PowerAction.SOFT_OFF:
            await self._qmp(machine, "system_powerdown")
        elif action is PowerAction.DIAG_INTERRUPT:
            await self._qmp(machine, "inject-nmi")
        elif action is PowerAction.RESET and not once and \
                await self._blocking(machine.started_with, settings):
            await self._set_boot_order(machine, boot_order(boot))
            await self._qmp(machine, "system_reset")
        else:   # a cycle, a reset that boots a device once or with new settings (disks,
            await self._kill(machine)            # secure boot): QEMU starts again
            await self._start(machine, boot, media, settings)
        log.debug("node %s: %s done", node_id, action.value)

    async def _start(self, machine: Machine, boot: BootOverride, media: str | None,
                     settings: MachineSettings) -> None:
        """Start QEMU paused, let a waiting console attach (so it sees the whole boot), run."""
        attached = self._console_attached.setdefault(machine.node.name, asyncio.Event())
        attached.clear()
        await self._forget(machine.node.name)   # a connection to a QEMU that is gone
        await self._blocking(machine.start, boot_order(boot), media, settings)
        if machine.node.name in self._console_wanted:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(attached.wait(), CONSOLE_ATTACH_WAIT)
        if boot.active and not boot.persistent:   # this boot has read it: later ones won't
            await self._set_boot_order(machine, USUAL_ORDER)
        await self._qmp(machine, "cont")

    # ---- virtual media: an ISO file in the node's directory, in its CD drive ------------------
    async def insert_media(self, node_id: str, url: str) -> str:
        machine = self.machines[node_id]
        download = await fetch(url, self.media_max_bytes, machine.dir)
        media = await self._blocking(machine.keep_media, download)
        if await self._blocking(machine.running):
            await self._qmp(machine, "blockdev-change-medium", id="cd", filename=media,
                            format="raw")
        return str(media)

    def remember_media(self, node_id: str, media: str | None) -> None:
        self.machines[node_id].prune_media(media)

    async def eject_media(self, node_id: str, media: str) -> None:
        machine = self.machines[node_id]
        if await self._blocking(machine.running):
            with contextlib.suppress(BackendError):   # the guest may hold the tray: forced
                await self._qmp(machine, "eject", id="cd", force=True)
        await self._blocking(Path(media).unlink, True)

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
        for name in list(self._monitors):
            await self._forget(name)
        self._executor.shutdown(wait=False, cancel_futures=True)
