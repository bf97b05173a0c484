"""Nova servers as nodes: power through the compute API, one server list per refresh.

Power mapping: on -> start, off and soft off -> stop (Nova has no hard power-off; its stop is a
graceful shutdown that becomes a hard one after the compute's timeout), reset and cycle ->
hard reboot, graceful restart -> soft reboot, diagnostic interrupt -> trigger crash dump.
A node is on when its vm_state is active/rescued, or stopped with task powering-on; any
task_state means "busy".
"""

from __future__ import annotations

import asyncio
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openstack
from openstack import exceptions as os_exc

from quintupleo.backends.base import Backend
from quintupleo.errors import BackendError, ConfigError, NodeBusy
from quintupleo.model import BootOverride, NodeInfo, Observation, PowerAction, PowerState

log = logging.getLogger(__name__)

ON_VM_STATES = {"active", "rescued", "resized"}
CONFLICT_ATTEMPTS = 3   # 409s with no task running, before an action is given up


def observation(server: Any) -> Observation:
    vm_state = (server.vm_state or "").lower()
    task_state = server.task_state
    on = vm_state in ON_VM_STATES or (vm_state == "stopped" and task_state == "powering-on")
    return Observation(PowerState.ON if on else PowerState.OFF, busy=task_state is not None)


class OpenStackBackend(Backend):
    name = "openstack"

    def __init__(self, cloud: str | None, prefix: str | None = None,
                 servers: list[str] | None = None, workers: int = 4,
                 connection: Any = None) -> None:
        self.cloud = cloud
        self.prefix = prefix
        self.wanted = list(servers or [])
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openstack")
        self._conn = connection
        self._ids: set[str] = set()
        self.calls = 0    # compute/network API calls made, for logs and benchmarks

    async def _run(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
        except os_exc.ConflictException:
            raise
        except os_exc.HttpException as exc:
            raise BackendError(f"{what}: HTTP {exc.status_code} {exc.details or ''}".strip()) \
                from None
        except os_exc.SDKException as exc:
            raise BackendError(f"{what}: {type(exc).__name__}: {exc}") from None

    async def _connection(self) -> Any:
        if self._conn is None:
            try:
                self._conn = await self._run("connect", openstack.connect, cloud=self.cloud)
            except BackendError as exc:
                raise ConfigError(f"cloud {self.cloud or '(OS_CLOUD)'}: {exc}; check "
                                  "clouds.yaml and --cloud / OS_CLOUD") from None
        return self._conn

    async def _list(self) -> list[Any]:
        conn = await self._connection()
        query = {"name": f"^{re.escape(self.prefix)}"} if self.prefix else {}
        return await self._run("list servers",
                               lambda: list(conn.compute.servers(details=True, **query)))

    async def discover(self) -> list[NodeInfo]:
        conn = await self._connection()
        servers = await self._list()
        if self.wanted:
            by_key = {s.id: s for s in servers} | {s.name: s for s in servers}
            missing = [w for w in self.wanted if w not in by_key]
            if missing:
                raise ConfigError(f"no such server(s): {', '.join(missing)}")
            servers = list({by_key[w].id: by_key[w] for w in self.wanted}.values())
        else:
            servers = sorted(servers, key=lambda s: s.name)
        if not servers:
            raise ConfigError(f"no servers named {self.prefix}* in cloud {self.cloud}")
        self._ids = {s.id for s in servers}
        ports = await self._run("list ports", lambda: list(conn.network.ports()))
        macs: dict[str, list[str]] = {}
        for port in sorted(ports, key=lambda p: p.created_at or ""):
            if port.device_id in self._ids:
                macs.setdefault(port.device_id, []).append(port.mac_address)
        return [self._info(s, macs.get(s.id, [])) for s in servers]

    @staticmethod
    def _info(server: Any, macs: list[str]) -> NodeInfo:
        flavor = server.flavor
        return NodeInfo(id=server.id, name=server.name, uuid=server.id, macs=tuple(macs),
                        cpus=int(flavor.vcpus or 1), memory_mb=int(flavor.ram or 512),
                        local_gb=max(1, int(flavor.disk or 1)),
                        extra={"flavor": flavor.original_name or flavor.name or ""})

    async def observe(self) -> dict[str, Observation]:
        return {s.id: observation(s) for s in await self._list() if s.id in self._ids}

    async def power(self, node_id: str, action: PowerAction, boot: BootOverride) -> None:
        conn = await self._connection()
        calls = {
            PowerAction.ON: lambda: conn.compute.start_server(node_id),
            PowerAction.OFF: lambda: conn.compute.stop_server(node_id),
            PowerAction.SOFT_OFF: lambda: conn.compute.stop_server(node_id),
            PowerAction.RESET: lambda: conn.compute.reboot_server(node_id, "HARD"),
            PowerAction.SOFT_RESET: lambda: conn.compute.reboot_server(node_id, "SOFT"),
            PowerAction.CYCLE: lambda: conn.compute.reboot_server(node_id, "HARD"),
            PowerAction.DIAG_INTERRUPT: lambda: conn.compute.trigger_server_crash_dump(node_id),
        }
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                await self._run(f"{action.value} {node_id}", calls[action])
                return
            except os_exc.ConflictException:
                if await self._already_done(conn, node_id, action):
                    return
                if attempt + 1 < CONFLICT_ATTEMPTS:
                    await asyncio.sleep(1.0)
        raise BackendError(f"{action.value} {node_id}: Nova keeps refusing it (409)")

    async def _already_done(self, conn: Any, node_id: str, action: PowerAction) -> bool:
        """After a 409: busy with a task (NodeBusy: the controller retries), already in the
        target state (done), or neither -- a task that ended between our call and this read,
        so the caller tries again a few times before giving up."""
        server = await self._run(f"get {node_id}", conn.compute.get_server, node_id)
        seen = observation(server)
        if seen.busy:
            raise NodeBusy(f"server {node_id} has task {server.task_state}")
        if action is PowerAction.ON or (action.target is not None and not action.boots):
            return seen.power is action.target
        return False

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._conn is not None:
            self._conn.close()
