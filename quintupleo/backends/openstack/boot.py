"""How a Nova server boots the device its BMC was asked for.

Nova cannot network-boot a server, nor boot it from a CD. A strategy turns "be on, booting
this device" and "be off" into Nova calls on the server as it is now (stopped, active,
rescued), waiting for each call's task to end before the next. The last call is left running:
the controller learns from its observations when the node is really up.

| strategy | network boot | disk boot | what survives a network boot |
|---|---|---|---|
| none    | (boots the disk)                  | start / hard reboot | everything |
| rescue  | rescue into the iPXE image         | unrescue / start    | the node's disk |
| rebuild | rebuild with the iPXE image, start | start / hard reboot | nothing (disk rewritten) |

A CD boot (virtual media) is a rescue into the inserted ISO under every strategy but `none`.
Every power action goes through the strategy: on -> start (or unrescue), off and soft off ->
stop (Nova has no hard power-off; its stop is a graceful shutdown that becomes a hard one after
the compute's timeout), reset and cycle -> hard reboot, graceful restart -> soft reboot,
diagnostic interrupt -> trigger crash dump.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from quintupleo.model import BootDevice, PowerAction, PowerState


class Nova(Protocol):
    """What a strategy needs from the driver."""

    async def call(self, what: str, fn: Any) -> Any: ...

    async def settle(self, server_id: str) -> Any:
        """Wait until the server has no task; the server as it then is."""
        ...

    @property
    def compute(self) -> Any: ...


@dataclass(frozen=True)
class Boot:
    """The device a boot must reach and the Glance image that is it (None: the node's disk)."""

    device: BootDevice = BootDevice.DISK
    image: str | None = None


DISK = Boot()


def _state(server: Any) -> str:
    return (server.vm_state or "").lower()


class BootStrategy(ABC):  # noqa: B024 - the base class is the "none" strategy's behaviour
    name: ClassVar[str] = "none"
    #: the strategy can boot the network / a CD (else such overrides boot the disk)
    boots_images: ClassVar[bool] = False
    #: the compute API microversion the strategy relies on
    min_microversion: ClassVar[tuple[int, int]] = (2, 1)
    #: why that microversion
    needs: ClassVar[str] = ""

    def resolve(self, wanted: Boot) -> Boot:
        """The boot this strategy will really do for `wanted`."""
        return wanted if self.boots_images and wanted.image else DISK

    async def power(self, nova: Nova, server: Any, action: PowerAction, boot: Boot) -> None:
        """Start `action` on the server as it is now (read just before, with no task)."""
        if action is PowerAction.DIAG_INTERRUPT:
            await nova.call(f"crash dump {server.id}",
                            lambda: nova.compute.trigger_server_crash_dump(server.id))
        elif action.target is PowerState.OFF:
            await self.power_off(nova, server)
        else:
            await self.power_on(nova, server, boot, restart=action is not PowerAction.ON,
                                soft=action is PowerAction.SOFT_RESET)

    async def power_on(self, nova: Nova, server: Any, boot: Boot, restart: bool,
                       soft: bool = False) -> None:
        """Make the server run `boot`; with `restart`, boot again even if it already runs."""
        if boot.image is None:
            await self._disk(nova, server, restart, soft)
        elif boot.device is BootDevice.CDROM:   # a CD boot is a rescue under every strategy
            await self._rescue(nova, server, boot.image)
        else:
            await self._network(nova, server, boot)

    async def power_off(self, nova: Nova, server: Any) -> None:
        # Nova cannot stop a rescued server: unrescue (the disk boots for a moment), then stop.
        server = await self._unrescued(nova, server)
        if _state(server) != "stopped":
            await nova.call(f"stop {server.id}", lambda: nova.compute.stop_server(server.id))

    async def _network(self, nova: Nova, server: Any, boot: Boot) -> None:
        """Boot the network (only strategies that resolve network boots to an image)."""
        raise NotImplementedError

    async def _disk(self, nova: Nova, server: Any, restart: bool, soft: bool) -> None:
        state = _state(server)
        if state == "rescued":
            await nova.call(f"unrescue {server.id}",
                            lambda: nova.compute.unrescue_server(server.id))
        elif state == "stopped":
            await nova.call(f"start {server.id}", lambda: nova.compute.start_server(server.id))
        elif restart or state == "error":   # a hard reboot is how Nova recovers from ERROR
            kind = "SOFT" if soft and state != "error" else "HARD"
            await nova.call(f"reboot {server.id}",
                            lambda: nova.compute.reboot_server(server.id, kind))

    async def _rescue(self, nova: Nova, server: Any, image: str) -> None:
        server = await self._unrescued(nova, server)   # Nova cannot rescue a rescued server
        await nova.call(f"rescue {server.id}",
                        lambda: nova.compute.rescue_server(server.id, image=image))

    @staticmethod
    async def _unrescued(nova: Nova, server: Any) -> Any:
        if _state(server) != "rescued":
            return server
        await nova.call(f"unrescue {server.id}", lambda: nova.compute.unrescue_server(server.id))
        return await nova.settle(server.id)


class NoStrategy(BootStrategy):
    """Power only: every boot boots the server's disk (the BMC's behaviour before strategies)."""


class RescueStrategy(BootStrategy):
    name = "rescue"
    boots_images = True
    min_microversion = (2, 87)
    needs = "stable device rescue (the node's disks stay attached, the rescue disk boots)"

    async def _network(self, nova: Nova, server: Any, boot: Boot) -> None:
        assert boot.image is not None
        await self._rescue(nova, server, boot.image)


class RebuildStrategy(BootStrategy):
    name = "rebuild"
    boots_images = True
    min_microversion = (2, 1)

    async def _network(self, nova: Nova, server: Any, boot: Boot) -> None:
        assert boot.image is not None
        server = await self._unrescued(nova, server)
        was_stopped = _state(server) == "stopped"
        await nova.call(f"rebuild {server.id}",
                        lambda: nova.compute.rebuild_server(server.id, boot.image))
        if was_stopped:   # Nova keeps a stopped server stopped through a rebuild
            await nova.settle(server.id)
            await nova.call(f"start {server.id}", lambda: nova.compute.start_server(server.id))


STRATEGIES: dict[str, type[BootStrategy]] = {
    s.name: s for s in (NoStrategy, RescueStrategy, RebuildStrategy)}
