"""Wiring of the BMC service: backend -> node controllers -> front ends, in one asyncio loop."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from quintupleo.backends.base import Backend
from quintupleo.bmc import logs
from quintupleo.bmc.accounts import Accounts
from quintupleo.bmc.controller import NodeController, Refresher
from quintupleo.bmc.events import EventBus
from quintupleo.bmc.ipmi.server import IpmiEndpoint, listen
from quintupleo.bmc.metrics import Metrics, ServiceState
from quintupleo.bmc.redfish.app import RedfishService
from quintupleo.bmc.settings import BmcSettings
from quintupleo.bmc.store import BootStore
from quintupleo.bmc.throttle import FailureCounter, LoginGuard
from quintupleo.errors import ConfigError
from quintupleo.inventory import InventoryNode, write_private
from quintupleo.inventory.ironic import ironic_document
from quintupleo.model import Credentials
from quintupleo.tls import self_signed, server_context

log = logging.getLogger(__name__)


def _raise_open_files_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed + 64:
        target = hard if hard == resource.RLIM_INFINITY else min(hard, needed + 1024)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@dataclass
class BmcService:
    """Serves `backend`'s nodes (built by the caller from the settings: a lab, a cloud, fakes)."""

    settings: BmcSettings
    backend: Backend
    controllers: list[NodeController] = field(default_factory=list)
    endpoints: list[InventoryNode] = field(default_factory=list)
    refresher: Refresher | None = None
    _transports: list[asyncio.BaseTransport] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _store: BootStore | None = None
    accounts: Accounts | None = None
    events: EventBus = field(default_factory=EventBus)
    _runner: web.AppRunner | None = None
    _http: asyncio.Server | None = None
    sources: FailureCounter | None = None    # failed logins per source, for all front ends
    metrics: Metrics = field(default_factory=Metrics)
    ipmi: list[IpmiEndpoint] = field(default_factory=list)
    redfish: RedfishService | None = None

    async def start(self) -> None:
        settings = self.settings
        infos = await self.backend.discover()
        self._store = BootStore(settings.state_dir / "boot.sqlite")
        self.accounts = Accounts(Credentials(settings.username, settings.password),
                                 settings.state_dir / "accounts.sqlite")
        policy = settings.lockout
        self.sources = FailureCounter(policy.source_threshold, policy.duration, policy.window)
        logs.install()
        saved = self._store.load_all()
        media = self._store.load_media()
        self.refresher = Refresher(self.backend, self.controllers, settings.refresh_interval)
        self.refresher.durations = self.metrics.refresh.observe
        self.metrics.watch(self._state)
        for info in infos:
            controller = NodeController(
                info, self.backend, self._store, saved.get(f"{self.backend.name}:{info.id}"),
                on_action=self.refresher.poke, events=self.events)
            controller.media_url, controller.media = media.get(controller.key, (None, None))
            self.backend.remember_media(info.id, controller.media)
            self.controllers.append(controller)
        await self.refresher.refresh()   # answer the first poll with a real state
        self._tasks.append(asyncio.get_running_loop().create_task(self.refresher.run()))
        self._tasks.append(asyncio.get_running_loop().create_task(self._flush_traffic_log()))
        await self._listen_ipmi()
        if settings.redfish:
            await self._listen_redfish()
        if settings.inventory_output is not None:
            write_private(settings.inventory_output,
                          ironic_document(self.endpoints, settings.inventory_driver))
            log.info("wrote Ironic inventory of %d nodes to %s", len(self.endpoints),
                     settings.inventory_output)

    async def _listen_ipmi(self) -> None:
        seen: dict[tuple[str, int], str] = {}
        for index, controller in enumerate(self.controllers):
            access = self.settings.access(controller.info, index)
            where = (access.ipmi_address, access.ipmi_port)
            if where in seen:
                raise ConfigError(f"nodes {seen[where]} and {controller.info.name} "
                                  f"both want IPMI on {where[0]}:{where[1]}")
            seen[where] = controller.info.name
            extra = controller.info.extra   # what the backend knows of profile and firmware
            self.endpoints.append(InventoryNode(controller.info, access, extra.get("profile"),
                                                extra.get("boot_mode", "uefi")))
        _raise_open_files_limit(len(self.endpoints))
        for node, controller in zip(self.endpoints, self.controllers, strict=True):
            bmc = node.bmc
            assert self.accounts is not None
            endpoint = IpmiEndpoint(controller, bmc.ipmi, self.accounts,
                                    self.settings.session_timeout,
                                    LoginGuard(self.settings.lockout, self.sources),
                                    self.metrics)
            self.ipmi.append(endpoint)
            try:
                self._transports.append(await listen(endpoint, bmc.ipmi_address, bmc.ipmi_port))
            except OSError as exc:
                raise ConfigError(f"node {node.info.name}: cannot listen on UDP "
                                  f"{bmc.ipmi_address}:{bmc.ipmi_port}: {exc.strerror}") from None
            log.debug("node %s: IPMI on %s:%d", node.info.name, bmc.ipmi_address, bmc.ipmi_port)

    async def _listen_redfish(self) -> None:
        settings = self.settings
        context = None
        if settings.tls:
            cert, key = settings.tls_cert, settings.tls_key
            if cert is None or key is None:
                cert, key = self_signed(settings.state_dir, settings.redfish_address)
            try:
                context = server_context(cert, key)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"TLS certificate or key unusable: {exc}") from None
        assert self.accounts is not None
        service = self.redfish = RedfishService(
            {c.info.id: c for c in self.controllers}, self.accounts,
            settings.redfish_session_timeout, events=self.events,
            guard=LoginGuard(settings.lockout, self.sources),
            idle_timeout=settings.redfish_idle_timeout, metrics=self.metrics)
        # keepalive_timeout also bounds how long a new connection may take to send its first
        # request's headers (aiohttp arms it at connect): no slow-header client holds a socket
        self._runner = web.AppRunner(service.application(), access_log=None,
                                     keepalive_timeout=settings.redfish_idle_timeout,
                                     max_line_size=8190, max_field_size=8190, max_headers=64)
        await self._runner.setup()
        assert self._runner.server is not None
        loop = asyncio.get_running_loop()
        try:
            # asyncio itself, not aiohttp's TCPSite: only it bounds the TLS handshake (a client
            # that connects and never speaks TLS is let go after the idle timeout too)
            self._http = await loop.create_server(
                self._runner.server, settings.redfish_address, settings.redfish_port,
                ssl=context, reuse_address=True,
                ssl_handshake_timeout=settings.redfish_idle_timeout if context else None)
        except OSError as exc:
            raise ConfigError(f"cannot listen for Redfish on {settings.redfish_address}:"
                              f"{settings.redfish_port}: {exc.strerror}") from None

    def _state(self) -> ServiceState:
        """What a scrape of /metrics reads: the service as it is now."""
        sessions = {"ipmi": sum(sum(1 for s in e.handshake.sessions.values() if s.active)
                                for e in self.ipmi)}
        locked = {"ipmi": sum(e.handshake.guard.locked_out for e in self.ipmi)}
        if self.redfish is not None:
            sessions["redfish"] = len(self.redfish.sessions.listed())
            locked["redfish"] = self.redfish.guard.locked_out
        return ServiceState(
            Counter(c.power.value if c.power else "unknown" for c in self.controllers),
            sum(c.queued for c in self.controllers), sessions, locked,
            Counter(getattr(self.backend, "call_kinds", {})))

    async def _flush_traffic_log(self) -> None:
        while True:
            await asyncio.sleep(logs.PERIOD)
            logs.traffic.flush()

    async def stop(self) -> None:
        if self._http is not None:
            self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()   # ends the connections and the streams
        for transport in self._transports:
            transport.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.backend.close()
        if self._store is not None:
            self._store.close()
        if self.accounts is not None:
            self.accounts.close()
        logs.traffic.flush(everything=True)

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Start, serve until SIGTERM/SIGINT, stop."""
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        try:
            await self.start()
            first, last = self.endpoints[0].bmc, self.endpoints[-1].bmc
            redfish = f", Redfish on {self.settings.redfish_url}" if self.settings.redfish else ""
            log.info("ready: %d nodes from %s, IPMI on %s:%d .. %s:%d%s", len(self.endpoints),
                     self.settings.backend, first.ipmi_address, first.ipmi_port,
                     last.ipmi_address, last.ipmi_port, redfish)
            if ready is not None:
                ready.set()
            await stopping.wait()
            log.info("stopping")
        finally:
            await self.stop()
