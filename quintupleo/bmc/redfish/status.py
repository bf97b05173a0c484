"""The status page: every node at a glance in a browser, served by the BMC on the Redfish port
with Redfish's authentication (HTTP Basic: the browser asks once).

The page (`/status`, its files in page/) ships its own script and style and nothing else; it
reads `/status/nodes` (one summary of every node), follows the EventService's Server-Sent
Events to refresh, acts through Redfish itself (Reset, the Boot PATCH) and opens a node's
WebSocket console.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from aiohttp import web

from quintupleo.bmc.controller import NodeController
from quintupleo.bmc.redfish import resources as rf
from quintupleo.bmc.redfish.odata import reply

PAGE = "/status"
ASSETS = {"": ("index.html", "text/html"), "/app.js": ("app.js", "text/javascript"),
          "/style.css": ("style.css", "text/css")}


def summary(controller: NodeController) -> dict[str, Any]:
    """What the page shows of one node, in Redfish's words."""
    system = rf.system(controller)
    boot = system["Boot"]
    return {"Id": system["Id"], "Name": system["Name"], "Kind": controller.kind,
            "PowerState": system["PowerState"], "Health": system["Status"]["Health"],
            "Pending": controller.pending,
            "Boot": {key: boot[key] for key in ("BootSourceOverrideTarget",
                                                "BootSourceOverrideEnabled",
                                                "BootSourceOverrideMode")},
            "BootTargets": boot["BootSourceOverrideTarget@Redfish.AllowableValues"],
            "ResetTypes": rf.reset_types(controller),
            "Console": system.get("SerialConsole", {}).get("WebSocket", {}).get("ConsoleURI"),
            "Media": controller.media_url is not None}


class StatusHandlers:
    def __init__(self, controllers: dict[str, NodeController]) -> None:
        self.controllers = controllers

    def routes(self) -> dict[str, dict[str, Any]]:
        pages: dict[str, dict[str, Any]] = {
            PAGE + path: {"GET": self._asset(name, kind)}
            for path, (name, kind) in ASSETS.items()}
        return {**pages, f"{PAGE}/nodes": {"GET": self.nodes}}

    @staticmethod
    def _asset(name: str, kind: str) -> Any:
        body = files("quintupleo.bmc.redfish").joinpath("page", name).read_bytes()

        async def handler(request: web.Request, _: dict[str, str]) -> web.StreamResponse:
            return web.Response(body=body, content_type=kind,
                                headers={"Content-Security-Policy": "default-src 'self'; "
                                         "connect-src 'self' ws: wss:; frame-ancestors 'none'",
                                         "X-Content-Type-Options": "nosniff"})
        return handler

    async def nodes(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        return reply({"Nodes": [summary(c) for c in self.controllers.values()]})
