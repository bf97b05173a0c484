"""One fake node's agent, from its network boot to its power-off: what Ironic Python Agent does
on the wire, and nothing on a disk.

It boots only when Ironic configured the node's network boot for the agent: its iPXE config
(`pxelinux.cfg/MAC` under Ironic's HTTP URL, what the node's iPXE would fetch) names
`ipa-api-url`. Then, as IPA: inspection data to `ipa-inspection-callback-url` when asked, a
lookup by MAC, heartbeats (its https callback URL, agent version, token and certificate) until
powered off,
and a command API (commands.py) whose slow commands report back by an early heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from quintupleo.backends.agent import commands
from quintupleo.model import NodeInfo

log = logging.getLogger(__name__)

AGENT_VERSION = "13.0.0"            # the Ironic Python Agent it stands for (images/agent.py)
LOOKUP_RETRY = 2.0                  # seconds between lookups Ironic refuses (wrong state)
LOOKUP_TIMEOUT = 600.0
MIN_API_VERSION = (1, 84)           # continue_inspection; everything before it too
MASKED_TOKEN = "******"             # Ironic's answer once it has given the token out


@dataclass(frozen=True)
class BootConfig:
    """What the agent ramdisk gets from the kernel command line Ironic wrote."""

    api_url: str
    inspection_url: str | None = None

    @classmethod
    def parse(cls, text: str) -> BootConfig | None:
        """The agent's parameters in an iPXE config; None when it boots no agent."""
        api = re.search(r"\bipa-api-url=(\S+)", text)
        if api is None:
            return None
        inspection = re.search(r"\bipa-inspection-callback-url=(\S+)", text)
        return cls(api.group(1), inspection.group(1) if inspection else None)


@dataclass
class CommandResult:
    """IPA's BaseCommandResult, as its API serializes it."""

    name: str
    params: dict[str, Any]
    status: str = "RUNNING"
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def document(self) -> dict[str, Any]:
        return {"id": self.id, "command_name": self.name.partition(".")[2],
                "command_params": self.params, "command_status": self.status,
                "command_error": self.error, "command_result": self.result}


class AgentRefused(Exception):
    """A command refused as IPA refuses it: HTTP status and faultstring."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FakeAgent:
    """The agent of `info`'s node, reachable at `callback_url` once booted."""

    def __init__(self, info: NodeInfo, callback_url: str, certificate: str,
                 session: aiohttp.ClientSession, delay: float, heartbeat: float | None,
                 power: Callable[[str], None], tokens: dict[str, str]) -> None:
        self.info = info
        self.callback_url = callback_url
        self.certificate = certificate      # what Ironic verifies the agent's API with
        self.session = session
        self.delay = delay
        self.heartbeat_every = heartbeat
        self.power = power                 # "power off" / "reboot": the node's own hardware
        # Ironic's token for the node, by node: Ironic shows it once ("******" after), and a
        # node it did not reboot keeps the one it had (fast track: from boot to boot of ours)
        self.tokens = tokens
        self.results: list[CommandResult] = []
        self.node_uuid: str | None = None
        self.started_at = time.time()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- the ramdisk's life ------------------------------------------------------------------
    async def run(self, config: BootConfig) -> None:
        """From boot to power-off (the caller cancels it then)."""
        version = await self._api_version(config.api_url)
        found = None
        if config.inspection_url:     # Ironic answers it as a lookup (its token, only once)
            found = await self._inspect(config.inspection_url, version)
        if not found or "config" not in found:
            found = await self._lookup(config.api_url, version)
        self._adopt(found)
        timeout = float(found["config"].get("heartbeat_timeout") or 300)
        while True:
            if not await self._heartbeat(config.api_url, version):
                # Ironic dropped our token (e.g. when cleaning ends and fast track keeps the
                # node up): a new lookup gets a new one, as a rebooted agent would
                self._adopt(await self._lookup(config.api_url, version))
            self._wake.clear()
            interval = self.heartbeat_every or timeout * random.uniform(0.3, 0.6)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)

    @property
    def token(self) -> str | None:
        return self.tokens.get(self.info.id)

    def _adopt(self, found: dict[str, Any]) -> None:
        """A lookup's answer: the node's UUID, and Ironic's token unless it is masked."""
        self.node_uuid = found["node"]["uuid"]
        token = found["config"].get("agent_token")
        if token and token != MASKED_TOKEN:
            self.tokens[self.info.id] = token

    async def _api_version(self, api: str) -> str:
        async with self.session.get(f"{api}/") as response:
            root = await response.json(content_type=None)
        newest = (root.get("default_version") or {}).get("version") or \
            max((v.get("version", "1.1") for v in root.get("versions", [])), default="1.1")
        major, minor = (int(part) for part in newest.split("."))
        if (major, minor) < MIN_API_VERSION:
            raise RuntimeError(f"Ironic's API {newest} is older than the fake agent needs")
        return newest

    def _headers(self, version: str) -> dict[str, str]:
        return {"X-OpenStack-Ironic-API-Version": version}

    async def _inspect(self, url: str, version: str) -> dict[str, Any] | None:
        """Inspection data, sent again while Ironic is not yet waiting for it (it powers the
        node on before it moves to `inspect wait`; a real ramdisk takes longer to boot), and
        after a send Ironic was too busy to answer in time (then a refusal may mean it took
        the first: on to the lookup)."""
        deadline = time.monotonic() + LOOKUP_TIMEOUT
        unanswered = False
        while True:
            try:
                async with self.session.post(url, json=inspection_data(self.info),
                                             headers=self._headers(version)) as response:
                    if response.status < 400:
                        answer: dict[str, Any] = await response.json(content_type=None)
                        return answer
                    if unanswered or time.monotonic() > deadline:
                        log.warning("node %s: inspection data refused: HTTP %d %s",
                                    self.info.name, response.status,
                                    (await response.text())[:300])
                        return None
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.info("node %s: inspection data unanswered: %r", self.info.name, exc)
                unanswered = True
            await asyncio.sleep(LOOKUP_RETRY)

    async def _lookup(self, api: str, version: str) -> dict[str, Any]:
        deadline = time.monotonic() + LOOKUP_TIMEOUT
        while True:
            try:
                async with self.session.get(f"{api}/v1/lookup", headers=self._headers(version),
                                            params={"addresses": ",".join(self.info.macs)}
                                            ) as response:
                    if response.status == 200:
                        found: dict[str, Any] = await response.json(content_type=None)
                        return found
            except (aiohttp.ClientError, TimeoutError) as exc:   # Ironic busy: as IPA, again
                log.info("node %s: lookup unanswered: %r", self.info.name, exc)
            if time.monotonic() > deadline:
                raise RuntimeError("Ironic never found the node by its MACs")
            await asyncio.sleep(LOOKUP_RETRY)

    async def _heartbeat(self, api: str, version: str) -> bool:
        """False when Ironic refuses our token."""
        body = {"callback_url": self.callback_url, "agent_version": AGENT_VERSION,
                "agent_token": self.token, "agent_verify_ca": self.certificate}
        try:
            async with self.session.post(f"{api}/v1/heartbeat/{self.node_uuid}", json=body,
                                         headers=self._headers(version)) as response:
                if response.status >= 400:
                    text = await response.text()
                    log.info("node %s: heartbeat refused: HTTP %d %s", self.info.name,
                             response.status, text[:300])
                    return "agent token" not in text
        except (aiohttp.ClientError, TimeoutError) as exc:   # Ironic busy or restarting
            log.info("node %s: heartbeat failed: %s", self.info.name, exc)
        return True

    # ---- the command API ---------------------------------------------------------------------
    def check_token(self, token: str | None) -> None:
        if self.token is not None and token != self.token:
            raise AgentRefused(401, "Invalid or missing agent token received")

    async def execute(self, name: str, params: dict[str, Any], wait: bool) -> CommandResult:
        if self.results and self.results[-1].status == "RUNNING":
            raise AgentRefused(409, "Agent is busy")
        try:
            outcome = commands.run(name, params)
        except commands.UnknownCommand as exc:
            raise AgentRefused(400, str(exc)) from None
        result = CommandResult(name, params)
        self.results.append(result)
        step = params.get("step")    # what Ironic sent, for whoever checks it (tests, people)
        log.info("node %s: fake agent command %s %s", self.info.name, name,
                 step.get("step", "") if isinstance(step, dict) else "")
        if not outcome.slow:
            self._finish(result, outcome)
        else:
            self._spawn(self._slowly(result, outcome))
        if wait:
            await result.done.wait()
        return result

    async def _slowly(self, result: CommandResult, outcome: commands.Outcome) -> None:
        await asyncio.sleep(self.delay)
        self._finish(result, outcome)
        self._wake.set()                   # as IPA: a heartbeat once an async command ends

    def _finish(self, result: CommandResult, outcome: commands.Outcome) -> None:
        result.status, result.result = "SUCCEEDED", outcome.result
        result.done.set()
        if outcome.then in ("power off", "reboot"):
            self.power(outcome.then)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def find(self, command_id: str) -> CommandResult | None:
        return next((r for r in self.results if r.id == command_id), None)

    def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def inspection_data(info: NodeInfo) -> dict[str, Any]:
    """What IPA's inspection sends: its inventory of the (fake) hardware."""
    disk = info.local_gb * 1024**3
    interfaces = [{"name": f"eth{i}", "mac_address": mac, "ipv4_address": None,
                   "ipv6_address": None, "has_carrier": True, "lldp": None, "vendor": "0x1af4",
                   "product": "0x0001", "client_id": None, "biosdevname": None,
                   "speed_mbps": 10000} for i, mac in enumerate(info.macs)]
    return {
        "inventory": {
            "interfaces": interfaces,
            "cpu": {"model_name": info.hardware.cpu_model, "frequency": "2000",
                    "count": info.cpus, "architecture": info.cpu_arch, "flags": []},
            "memory": {"total": info.memory_mb * 1024**2, "physical_mb": info.memory_mb},
            "disks": [{"name": "/dev/vda", "model": "", "size": disk, "rotational": False,
                       "wwn": None, "serial": f"{info.hardware.serial}-disk", "vendor": "0x1af4",
                       "by_path": "/dev/disk/by-path/pci-0000:00:04.0"}],
            "system_vendor": {"product_name": info.hardware.model,
                              "serial_number": info.hardware.serial,
                              "manufacturer": info.hardware.manufacturer,
                              "firmware": {"vendor": "QuintupleO", "version": "1.0",
                                           "build_date": "2026-01-01"}},
            "boot": {"current_boot_mode": "uefi" if info.hardware.boot_mode == "Uefi"
                     else "bios", "pxe_interface": info.macs[0] if info.macs else None},
            "hostname": info.name,
            "bmc_address": None,     # a fake node has no BMC of its own to read (ipmitool lan)
        },
        "root_disk": {"name": "/dev/vda", "size": disk},
        "boot_interface": info.macs[0] if info.macs else None,
    }
