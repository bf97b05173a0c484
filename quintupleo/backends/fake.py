"""In-memory nodes: scale-test a provisioning tool against thousands of BMCs without any VM."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from quintupleo.backends.agent import FakeAgents
from quintupleo.backends.base import Backend
from quintupleo.errors import NodeBusy
from quintupleo.model import (
    PLAIN_MACHINE,
    BootDevice,
    BootOverride,
    Hardware,
    MachineSettings,
    NodeInfo,
    Observation,
    PowerAction,
    PowerState,
)

# Stable identities: the same N nodes (names, UUIDs, MACs) on every start, so that persisted
# boot settings and enrolled inventories stay valid across restarts.
_NAMESPACE = uuid.UUID("6f1b1d1e-5a37-4c8e-9d1a-0b5e9f0c7a11")


@dataclass
class _FakeNode:
    power: PowerState = PowerState.OFF
    target: PowerState | None = None     # where a running transition ends
    busy_until: float = 0.0
    boots: int = 0
    last_boot_device: BootDevice = BootDevice.NONE
    last_boot_media: str | None = None
    interrupts: int = 0


class FakeBackend(Backend):
    """N nodes that start powered off; each change takes `delay` seconds (0: instant).

    With `staged`, boots behave like a cloud's rescue or rebuild: the node reads as on only
    when the change is done. Virtual media is remembered by URL, nothing is fetched.
    """

    name = "fake"
    has_media = True

    def __init__(self, count: int, delay: float = 0.0, prefix: str = "fake-",
                 staged: bool = False, agents: FakeAgents | None = None) -> None:
        self.delay = delay
        self.staged_boots = staged
        self.settle_poll = min(delay, 0.2)
        self.infos = [self._info(prefix, i) for i in range(count)]
        self.nodes = {info.id: _FakeNode() for info in self.infos}
        self.actions: list[tuple[str, PowerAction]] = []   # what really ran, for tests and logs
        self.index = {info.id: i for i, info in enumerate(self.infos)}
        self.agents = agents
        self._halting: set[asyncio.Task[None]] = set()
        if agents is not None:       # what the agent does to its own node
            agents.power = self._agent_power

    @staticmethod
    def _info(prefix: str, index: int) -> NodeInfo:
        name = f"{prefix}{index}"
        mac = f"52:54:00:{(index >> 16) & 0xFF:02x}:{(index >> 8) & 0xFF:02x}:{index & 0xFF:02x}"
        return NodeInfo(id=name, name=name, uuid=str(uuid.uuid5(_NAMESPACE, name)), macs=(mac,),
                        cpus=2, memory_mb=2048, local_gb=10,
                        hardware=Hardware(model="Fake node", secure_boot=True,
                                          serial=f"QO-{index:08d}",
                                          firmware="QuintupleO fake firmware 1.0"))

    async def discover(self) -> list[NodeInfo]:
        return list(self.infos)

    async def observe(self) -> dict[str, Observation]:
        now = time.monotonic()
        for node in self.nodes.values():
            if node.target is not None and now >= node.busy_until:
                node.power, node.target = node.target, None
        return {node_id: Observation(node.power, busy=node.target is not None)
                for node_id, node in self.nodes.items()}

    def staged(self, action: PowerAction, boot: BootOverride) -> bool:
        return self.staged_boots and action.boots

    async def insert_media(self, node_id: str, url: str) -> str:
        return f"fake-media:{url}"

    async def power(self, node_id: str, action: PowerAction, boot: BootOverride,
                    media: str | None = None,
                    settings: MachineSettings = PLAIN_MACHINE) -> None:
        node = self.nodes[node_id]
        if node.target is not None and time.monotonic() < node.busy_until:
            raise NodeBusy(f"{node_id} is still changing power state")
        self.actions.append((node_id, action))
        if action is PowerAction.DIAG_INTERRUPT:
            node.interrupts += 1
            return
        if action.boots:
            node.boots += 1
            node.last_boot_device = boot.device
            node.last_boot_media = media if boot.device is BootDevice.CDROM else None
        target = action.target or node.power
        if self.delay <= 0:
            node.power = target
        else:
            node.target, node.busy_until = target, time.monotonic() + self.delay
        if self.agents is not None:
            await self._agent_follows(node_id, action, boot, target)

    async def _agent_follows(self, node_id: str, action: PowerAction, boot: BootOverride,
                             target: PowerState) -> None:
        """A network boot may start the node's agent; any other boot or a power-off ends it."""
        assert self.agents is not None
        if action.boots and target is PowerState.ON and \
                boot.device in (BootDevice.PXE, BootDevice.HTTP):
            await self.agents.boot(self.infos[self.index[node_id]], self.index[node_id])
        elif action.boots or target is PowerState.OFF:
            await self.agents.halt(node_id)

    def _agent_power(self, node_id: str, what: str) -> None:
        """The agent powers its node off (`standby.power_off`) or reboots it (to its disk)."""
        if what == "power off":
            self.nodes[node_id].power, self.nodes[node_id].target = PowerState.OFF, None
        self.actions.append((node_id, PowerAction.OFF if what == "power off"
                             else PowerAction.RESET))
        if self.agents is not None:
            task = asyncio.get_running_loop().create_task(self.agents.halt(node_id))
            self._halting.add(task)
            task.add_done_callback(self._halting.discard)

    async def close(self) -> None:
        if self.agents is not None:
            await self.agents.close()

    def supports(self, action: PowerAction) -> bool:
        return True
