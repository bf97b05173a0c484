"""What the devcloud's hypervisor was asked to do (its RecordingFakeDriver writes
data/nova/virt-events.jsonl): the cross-check in Nova of what a BMC made happen."""

from __future__ import annotations

import json
import time


class VirtEvents:
    """What the devcloud's hypervisor was asked to do, for one server, from now on."""

    def __init__(self, home, server_id: str) -> None:
        self.path = home / "data" / "nova" / "virt-events.jsonl"
        self.server_id = server_id
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def all(self) -> list[dict]:
        if not self.path.exists():
            return []
        with self.path.open() as log:
            log.seek(self.offset)
            events = [json.loads(line) for line in log if line.strip()]
        return [e for e in events if e["instance"] == self.server_id]

    def wait_for(self, event: str, count: int = 1, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(found := [e for e in self.all() if e["event"] == event]) < count:
            assert time.monotonic() < deadline, f"no {event} in {self.all()}"
            time.sleep(0.1)
        return found
