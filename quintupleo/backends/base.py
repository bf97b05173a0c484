"""The protocol every backend speaks: discover nodes, observe them all at once, change power."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from quintupleo.errors import NotSupported
from quintupleo.model import (
    PLAIN_MACHINE,
    BootDevice,
    BootOverride,
    MachineSettings,
    NodeInfo,
    Observation,
    PowerAction,
)


class Backend(ABC):
    """A source of nodes. Methods are coroutines; blocking clients run in a bounded executor.

    `power` only *starts* a change and returns; the controller learns that it finished from
    later observations (an Observation with the target state and busy=False).
    """

    #: short, stable name used in logs and as the key prefix of persisted boot settings
    name: str
    #: whether nodes have a serial console (open_console)
    has_console: bool = False
    #: whether nodes have a virtual CD (insert_media)
    has_media: bool = False
    #: whether the RAID controller's volumes become disks of the machine
    has_volume_disks: bool = False
    #: the devices a boot override may name
    boot_devices: frozenset[BootDevice] = frozenset(BootDevice)
    #: how long after starting an action a new observation is worth making (batches actions
    #: that arrive together into one cloud call); 0 for backends whose reads cost nothing
    settle_poll: float = 0.5

    @abstractmethod
    async def discover(self) -> list[NodeInfo]:
        """The nodes this backend serves, in a stable order."""

    @abstractmethod
    async def observe(self) -> dict[str, Observation]:
        """Every node's power state, in one batch (one cloud call, not one per node).

        Raises BackendError when the cloud cannot be read.
        """

    @abstractmethod
    async def power(self, node_id: str, action: PowerAction, boot: BootOverride,
                    media: str | None = None,
                    settings: MachineSettings = PLAIN_MACHINE) -> None:
        """Start `action` on a node; `boot` is the override this boot must honour (if it boots),
        `media` the inserted virtual CD (what `insert_media` returned), if any, `settings` what
        the BMC's platform asks of this boot: the RAID volumes (a backend with
        `has_volume_disks` attaches them as disks; the others leave them to the BMC's record)
        and secure boot (acted on where the node's Hardware says `secure_boot`).

        Raises NodeBusy when the node is in a transition (the caller retries),
        NotSupported when the backend has no such action, BackendError otherwise.
        """

    def staged(self, action: PowerAction, boot: BootOverride) -> bool:
        """Whether this action reaches its state through steps (a rescue, a rebuild) that the
        node must finish before it reads as on: then the BMC says "on" only once it is."""
        return False

    async def insert_media(self, node_id: str, url: str) -> str:
        """Fetch a CD image from `url` and make it bootable by the node; a reference to it."""
        raise NotSupported(f"{self.name} nodes have no virtual media")

    async def open_console(self, node_id: str) -> tuple[Any, Any]:
        """The node's serial console as an asyncio (reader, writer); OSError while it has none
        (e.g. powered off)."""
        raise NotSupported(f"{self.name} nodes have no serial console")

    def want_console(self, node_id: str, wanted: bool) -> None:  # noqa: B027 - optional
        """A console client (SOL) is attached to the node, or no longer: a backend may hold a
        starting node until its console is connected, so no output is lost."""

    def remember_media(self, node_id: str, media: str | None) -> None:  # noqa: B027 - optional
        """At the BMC's start: the CD the node holds (persisted by the controller), or None.
        What else an insert interrupted by a kill left behind for the node may go."""

    async def eject_media(self, node_id: str, media: str) -> None:  # noqa: B027 - optional
        """Forget an inserted CD (the node boots its usual device again)."""

    def supports(self, action: PowerAction) -> bool:
        return action is not PowerAction.DIAG_INTERRUPT

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and threads."""
