"""A fake Ironic Python Agent for the fake backend's nodes (`bmc serve --fake-agent URL`), so that
Ironic can inspect, clean and deploy thousands of nodes that exist only in memory.

One aiohttp server holds every node's agent API, each on its own port (`port_base + index`,
IPA's 9999 by default), listening only while its node runs the agent. URL is where Ironic serves
its iPXE configs (its `[deploy]http_url`): a node that network-boots reads its own there, as
iPXE would, and runs the agent only when that config boots one (node.py).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from quintupleo.backends.agent.node import AGENT_VERSION, AgentRefused, BootConfig, FakeAgent
from quintupleo.model import NodeInfo
from quintupleo.tls import self_signed, server_context

log = logging.getLogger(__name__)
__all__ = ["FakeAgents"]


class FakeAgents:
    def __init__(self, boot_url: str, state_dir: Path, address: str = "127.0.0.1",
                 port_base: int = 9999, delay: float = 1.0, heartbeat: float | None = None,
                 power: Callable[[str, str], None] = lambda node_id, what: None) -> None:
        self.boot_url = boot_url.rstrip("/")
        self.state_dir = state_dir
        self.address, self.port_base = address, port_base
        self.delay, self.heartbeat = delay, heartbeat
        self.power = power                  # (node id, "power off" | "reboot"): the agent's own
        self.agents: dict[str, FakeAgent] = {}
        self._by_port: dict[int, FakeAgent] = {}
        self._sites: dict[str, web.TCPSite] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tls: ssl.SSLContext | None = None
        self._tokens: dict[str, str] = {}
        self._index: dict[str, int] = {}     # node id -> its index (its port's)
        self._certificate = ""

    async def _start(self) -> tuple[web.AppRunner, aiohttp.ClientSession]:
        if self._runner is None or self._session is None:
            app = web.Application()
            app.router.add_get("/v1/status", self._status)
            for path in ("/v1/commands", "/v1/commands/"):
                app.router.add_get(path, self._list)
                app.router.add_post(path, self._execute)
            app.router.add_get("/v1/commands/{id}", self._one)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            # As IPA: its API over TLS with a certificate of its own, which each heartbeat
            # hands Ironic to verify it with (Ironic requires TLS by default).
            cert, key = self_signed(self.state_dir, self.address, "agent")
            self._tls, self._certificate = server_context(cert, key), cert.read_text()
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        return self._runner, self._session

    # ---- the node's side: it network-boots, it stops --------------------------------------
    async def boot(self, info: NodeInfo, index: int) -> None:
        """The node network-boots: the agent runs if Ironic's config for it says so."""
        await self.halt(info.id)
        runner, session = await self._start()
        config = await self._boot_config(session, info)
        if config is None:
            log.info("node %s: no agent boot config at %s", info.name, self.boot_url)
            return
        self._index[info.id] = index
        port = self.port_base + index
        site = web.TCPSite(runner, self.address, port, ssl_context=self._tls)
        try:
            await site.start()
        except OSError as exc:     # taken (by a client's ephemeral port, say): a dead ramdisk
            log.warning("node %s: fake agent cannot listen on %s port %d: %s", info.name,
                        self.address, port, exc.strerror)
            return
        host = f"[{self.address}]" if ":" in self.address else self.address
        agent = FakeAgent(info, f"https://{host}:{port}", self._certificate, session,
                          self.delay, self.heartbeat, lambda what: self.power(info.id, what),
                          self._tokens)
        self.agents[info.id], self._by_port[port], self._sites[info.id] = agent, agent, site
        self._tasks[info.id] = asyncio.get_running_loop().create_task(self._run(agent, config))
        log.info("node %s: fake agent up on port %d (Ironic at %s)", info.name, port,
                 config.api_url)

    async def _run(self, agent: FakeAgent, config: BootConfig) -> None:
        try:
            await agent.run(config)
        except asyncio.CancelledError:
            raise
        except Exception as exc:   # Ironic gone, timed out, or answering nonsense: one line
            log.warning("node %s: fake agent stopped: %s: %s", agent.info.name,
                        type(exc).__name__, exc)

    async def _boot_config(self, session: aiohttp.ClientSession,
                           info: NodeInfo) -> BootConfig | None:
        for mac in info.macs:
            url = f"{self.boot_url}/pxelinux.cfg/{mac.replace(':', '-').lower()}"
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return BootConfig.parse(await response.text())
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.info("node %s: no boot config at %s: %s", info.name, url, exc)
        return None

    async def halt(self, node_id: str) -> None:
        """The node powered off or reset: its agent is gone."""
        task, site = self._tasks.pop(node_id, None), self._sites.pop(node_id, None)
        agent = self.agents.pop(node_id, None)
        if task is not None:
            task.cancel()
        if agent is not None:
            agent.stop()
            self._by_port.pop(self.port_base + self._index[node_id], None)
        if site is not None:
            await site.stop()

    async def close(self) -> None:
        for node_id in list(self.agents):
            await self.halt(node_id)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # ---- Ironic's side: the agent API -------------------------------------------------------
    def _agent(self, request: web.Request) -> FakeAgent:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        agent = self._by_port.get(sockname[1]) if sockname else None
        if agent is None:
            raise _fault_error(503, "No agent runs here")
        try:
            agent.check_token(request.query.get("agent_token"))
        except AgentRefused as exc:
            raise _fault_error(exc.status, str(exc)) from None
        return agent

    async def _status(self, request: web.Request) -> web.Response:
        agent = self._agent(request)
        return web.json_response({"started_at": agent.started_at, "version": AGENT_VERSION})

    async def _list(self, request: web.Request) -> web.Response:
        agent = self._agent(request)
        return web.json_response({"commands": [r.document() for r in agent.results]})

    async def _one(self, request: web.Request) -> web.Response:
        found = self._agent(request).find(request.match_info["id"])
        if found is None:
            return _fault(404, "Command not found")
        if request.query.get("wait") == "true":
            await found.done.wait()
        return web.json_response(found.document())

    async def _execute(self, request: web.Request) -> web.Response:
        try:
            agent = self._agent(request)
            body: Any = await request.json()
            if not isinstance(body, dict) or not isinstance(body.get("name"), str):
                return _fault(400, "Invalid command: a JSON object with a name is needed")
            params = body.get("params") or {}
            result = await agent.execute(body["name"], params if isinstance(params, dict)
                                         else {}, request.query.get("wait") == "true")
        except AgentRefused as exc:
            return _fault(exc.status, str(exc))
        except ValueError:
            return _fault(400, "Invalid command: the body is not JSON")
        return web.json_response(result.document())


def _fault(status: int, message: str) -> web.Response:
    return web.json_response({"faultcode": "Client" if status < 500 else "Server",
                              "faultstring": message, "debuginfo": None}, status=status)


def _fault_error(status: int, message: str) -> web.HTTPException:
    error = web.HTTPException(text=_fault(status, message).text, content_type="application/json")
    error.set_status(status)
    return error
