"""What happens to the nodes, for whoever listens (Redfish's EventService): a node powered on or
off, its boot override changed. Node controllers publish; listeners get each event at once, in
order, and must not block (they queue what they send)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class NodeEvent:
    id: int
    time: float          # Unix time
    node: str            # the node's backend id
    kind: str            # "power on", "power off", "boot override"
    detail: str = ""


class EventBus:
    def __init__(self) -> None:
        self._listeners: list[Callable[[NodeEvent], None]] = []
        self._ids = itertools.count(1)

    def listen(self, listener: Callable[[NodeEvent], None]) -> Callable[[], None]:
        """Call `listener` with every event from now on; returns what stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def publish(self, node: str, kind: str, detail: str = "") -> None:
        event = NodeEvent(next(self._ids), time.time(), node, kind, detail)
        for listener in list(self._listeners):
            listener(event)
