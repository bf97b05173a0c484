"""The Redfish service: routing, ETags, errors, and the handlers of each resource.

Every handler reads node controllers, never a cloud; actions are queued like IPMI's. Who may
call is auth.py's.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from quintupleo.bmc.accounts import Accounts
from quintupleo.bmc.controller import NodeController
from quintupleo.bmc.events import EventBus
from quintupleo.bmc.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from quintupleo.bmc.metrics import Metrics
from quintupleo.bmc.redfish import inventory
from quintupleo.bmc.redfish import resources as rf
from quintupleo.bmc.redfish.accounts import AccountHandlers, forbidden, required_privilege
from quintupleo.bmc.redfish.auth import SessionHandlers, Sessions
from quintupleo.bmc.redfish.bios import BiosHandlers
from quintupleo.bmc.redfish.console import serve_console
from quintupleo.bmc.redfish.errors import RedfishError, error_response
from quintupleo.bmc.redfish.events import EventHandlers
from quintupleo.bmc.redfish.metadata import metadata_document
from quintupleo.bmc.redfish.odata import (
    BODY_TIMEOUT,
    collection,
    json_only,
    read_body,
    reply,
    writable,
)
from quintupleo.bmc.redfish.raid import RaidHandlers
from quintupleo.bmc.redfish.status import StatusHandlers
from quintupleo.bmc.redfish.updates import UpdateHandlers
from quintupleo.bmc.tasks import TaskList
from quintupleo.bmc.throttle import LockoutPolicy, LoginGuard
from quintupleo.errors import BmcError, NodeBusy

log = logging.getLogger(__name__)

Match = dict[str, str]   # the route's named groups
Handler = Callable[[web.Request, Match], Awaitable[web.StreamResponse]]
PUBLIC = {("GET", "/redfish"), ("GET", "/redfish/v1"), ("GET", "/redfish/v1/odata"),
          ("GET", "/redfish/v1/$metadata"), ("POST", "/redfish/v1/SessionService/Sessions")}
METHODS = {"GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"}   # others: 501
WITH_BODY = {"POST", "PATCH", "PUT"}

#: the system's inventory: path under the system -> its resource
INVENTORY: dict[str, Callable[[NodeController], dict[str, Any]]] = {
    "/Processors": inventory.processors, "/Processors/CPU0": inventory.processor,
    "/Memory": inventory.memory_collection, "/Memory/DIMM0": inventory.memory,
    "/SimpleStorage": inventory.simple_storage_collection,
    "/SimpleStorage/0": inventory.simple_storage,
    "/Storage": inventory.storage_collection, "/Storage/0": inventory.storage,
    "/Storage/0/Drives/0": inventory.drive, "/Storage/0/Volumes": inventory.volumes,
}


@dataclass
class RedfishService:
    controllers: dict[str, NodeController]
    accounts: Accounts
    session_timeout: int = 1800
    events: EventBus = field(default_factory=EventBus)
    tasks: TaskList = field(default_factory=TaskList)
    guard: LoginGuard = field(default_factory=lambda: LoginGuard(LockoutPolicy()))
    idle_timeout: float = 15.0       # how long a request body may take to arrive
    metrics: Metrics | None = None
    routes: list[tuple[re.Pattern[str], dict[str, Handler], str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sessions = Sessions(self.accounts, self.session_timeout, self.guard)
        system = r"/redfish/v1/Systems/(?P<node>[^/]+)"
        self._route(r"/redfish", GET=self.version)
        self._route(r"/redfish/v1", GET=self.root)
        self._route(r"/redfish/v1/odata", GET=self.odata)
        self._route(r"/redfish/v1/\$metadata", GET=self.metadata)
        self._route(r"/redfish/v1/Systems", GET=self.systems)
        self._route(system, GET=self.system, PATCH=self.patch_system)
        self._route(system + r"/Actions/ComputerSystem\.Reset", POST=self.reset)
        self._route(system + r"/SerialConsole", GET=self.console)
        self._route(system + r"/EthernetInterfaces", GET=self.nics)
        self._route(system + r"/EthernetInterfaces/(?P<index>\d+)", GET=self.nic)
        for part, resource in INVENTORY.items():
            self._route(system + part, GET=self._inventory(resource))
        self._route(r"/redfish/v1/Managers", GET=self.managers)
        self._route(r"/redfish/v1/Managers/(?P<node>[^/]+)", GET=self.manager)
        media = r"/redfish/v1/Managers/(?P<node>[^/]+)/VirtualMedia"
        self._route(media, GET=self.virtual_media)
        self._route(media + "/Cd", GET=self.virtual_cd, PATCH=self.patch_virtual_cd)
        self._route(media + r"/Cd/Actions/VirtualMedia\.InsertMedia", POST=self.insert_media)
        self._route(media + r"/Cd/Actions/VirtualMedia\.EjectMedia", POST=self.eject_media)
        self._route(r"/redfish/v1/Chassis", GET=self.chassis_collection)
        self._route(r"/redfish/v1/Chassis/(?P<node>[^/]+)", GET=self.chassis,
                    PATCH=self.patch_chassis)
        chassis = r"/redfish/v1/Chassis/(?P<node>[^/]+)"
        self._route(chassis + "/Power", GET=self._inventory(inventory.chassis_power))
        self._route(chassis + "/Thermal", GET=self._inventory(inventory.chassis_thermal))
        for per_system in (BiosHandlers(self._node), RaidHandlers(self._node)):
            for pattern, methods in per_system.routes(system).items():
                self._route(pattern, **methods)
        self.event_handlers = EventHandlers(self.events)
        self.update_handlers = UpdateHandlers(self.controllers, self.tasks)
        self._route(r"/metrics", GET=self.exposition)
        for handlers in (SessionHandlers(self.sessions), AccountHandlers(self.accounts, self.guard),
                         self.event_handlers,
                         self.update_handlers, StatusHandlers(self.controllers)):
            for pattern, methods in handlers.routes().items():
                self._route(pattern, **methods)

    def _route(self, pattern: str, **methods: Handler) -> None:
        # ASCII: an index is 0-9, not any script's digits
        name = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern).replace("\\", "")
        self.routes.append((re.compile(pattern + "$", re.ASCII), methods, name))

    # ---- the aiohttp entry point ---------------------------------------------------------
    def application(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app[BODY_TIMEOUT] = self.idle_timeout
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        app.on_shutdown.append(lambda _: self.event_handlers.close())
        app.on_shutdown.append(lambda _: self.update_handlers.close())
        return app

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        response = await self._answer(request)
        if self.metrics is not None:
            self.metrics.requests.labels("redfish", f"{request.method} "
                                         f"{request.get('route', 'unknown')}",
                                         str(response.status)).inc()
            self.metrics.latency.labels("redfish").observe(time.perf_counter() - started)
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        headers = {"OData-Version": "4.0", "Cache-Control": "no-cache"}
        try:
            response = await self._dispatch(request)
        except RedfishError as exc:
            response = error_response(exc, headers)
        except BmcError as exc:
            busy = {"Retry-After": str(exc.retry_after)} if isinstance(exc, NodeBusy) else {}
            response = error_response(RedfishError(exc.http_status, str(exc), headers=busy),
                                      headers)
        except web.HTTPException as exc:   # raised by aiohttp itself, e.g. a body too large
            response = error_response(RedfishError(exc.status, exc.reason), headers)
        except Exception:   # a bug: its cause goes to the log, the client gets a Redfish body
            log.exception("redfish %s %s from %s failed", request.method, request.path,
                          request.remote)
            response = error_response(RedfishError(500, "Internal error; see the BMC log."),
                                      headers)
        if not response.prepared:    # a WebSocket console has sent its headers already
            response.headers.update(headers)
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.method not in METHODS:
            raise RedfishError(501, f"The HTTP method {request.method} is not implemented.")
        odata_version = request.headers.get("OData-Version")
        if odata_version is not None and odata_version.strip() != "4.0":
            raise RedfishError(412, f"OData-Version {odata_version} is not supported; this "
                               "service speaks 4.0.", "PreconditionFailed", (request.path,))
        if request.method in WITH_BODY:
            json_only(request)
        path = request.path.rstrip("/") or "/"
        method = "GET" if request.method == "HEAD" else request.method
        if method == "POST" and path.endswith("/Members"):   # DSP0266: the same as the collection
            path = path.removesuffix("/Members")
        for pattern, methods, name in self.routes:
            match = pattern.match(path)
            if match is None:
                continue
            request["route"] = name
            allow = ", ".join([*methods, "HEAD"] if "GET" in methods else methods)
            handler = methods.get(method)
            if handler is None:
                raise RedfishError(405, f"{request.method} is not allowed on {path}",
                                   headers={"Allow": allow})
            if (method, path) not in PUBLIC:
                account = await self.sessions.authenticate(
                    request.headers.get("X-Auth-Token"), request.headers.get("Authorization", ""),
                    request.remote or "?")
                privilege = required_privilege(method, path)
                if not account.may(privilege):
                    raise forbidden(account, privilege)
                request["account"] = account
            response = await handler(request, match.groupdict())
            if method == "GET" and not response.prepared:
                response.headers["Allow"] = allow
            return response
        raise RedfishError(404, f"{path} does not exist", "ResourceMissingAtURI", (path,))

    # ---- helpers -------------------------------------------------------------------------
    _json = staticmethod(reply)
    _body = staticmethod(read_body)

    def _node(self, node: str) -> NodeController:
        controller = self.controllers.get(node)
        if controller is None:
            raise RedfishError(404, f"No system {node}.", "ResourceNotFound",
                               ("ComputerSystem", node))
        return controller


    async def exposition(self, request: web.Request, _: Match) -> web.StreamResponse:
        """The Prometheus metrics (text exposition format)."""
        if self.metrics is None:
            raise RedfishError(404, "No metrics here.", "ResourceNotFound", ("metrics", ""))
        return web.Response(body=self.metrics.exposition(),
                            headers={"Content-Type": METRICS_CONTENT_TYPE})

    # ---- resources -----------------------------------------------------------------------
    async def version(self, request: web.Request, _: Match) -> web.StreamResponse:
        return self._json({"v1": "/redfish/v1/"})

    async def root(self, request: web.Request, _: Match) -> web.StreamResponse:
        return self._json(rf.service_root())

    async def odata(self, request: web.Request, _: Match) -> web.StreamResponse:
        return self._json(rf.odata_service_document(list(self.controllers.values())))

    async def metadata(self, request: web.Request, _: Match) -> web.StreamResponse:
        return web.Response(text=metadata_document(), content_type="application/xml")

    async def systems(self, request: web.Request, _: Match) -> web.StreamResponse:
        return self._json(collection("ComputerSystemCollection", "/redfish/v1/Systems",
                                        "Systems", [f"/redfish/v1/Systems/{n}"
                                                    for n in self.controllers]))

    async def system(self, request: web.Request, match: Match) -> web.StreamResponse:
        return self._json(rf.system(self._node(match["node"])))

    def _inventory(self, resource: Callable[[NodeController], dict[str, Any]]) -> Handler:
        async def handler(request: web.Request, match: Match) -> web.StreamResponse:
            return self._json(resource(self._node(match["node"])))
        return handler

    async def console(self, request: web.Request, match: Match) -> web.StreamResponse:
        """The node's serial console as a WebSocket: output as binary messages, input typed."""
        controller = self._node(match["node"])
        if not controller.has_console:
            raise RedfishError(404, f"{controller.info.name} has no serial console.",
                               "ResourceNotFound", ("SerialConsole", controller.info.id))
        socket = web.WebSocketResponse(heartbeat=30)
        console = controller.attach_console(f"WebSocket from {request.remote}",
                                            socket.send_bytes)   # 409 while SOL has it
        try:
            await socket.prepare(request)
        except BaseException:
            console.close()
            raise
        console.start()
        await serve_console(socket, console)
        return socket

    async def nics(self, request: web.Request, match: Match) -> web.StreamResponse:
        return self._json(rf.ethernet_interfaces(self._node(match["node"])))

    async def nic(self, request: web.Request, match: Match) -> web.StreamResponse:
        controller = self._node(match["node"])
        index = int(match["index"])
        if index >= len(controller.info.macs):
            raise RedfishError(404, f"No interface {index}.", "ResourceNotFound",
                               ("EthernetInterface", str(index)))
        return self._json(rf.ethernet_interface(controller, index))

    async def managers(self, request: web.Request, _: Match) -> web.StreamResponse:
        return self._json(collection("ManagerCollection", "/redfish/v1/Managers", "Managers",
                                        [f"/redfish/v1/Managers/{n}" for n in self.controllers]))

    async def manager(self, request: web.Request, match: Match) -> web.StreamResponse:
        return self._json(rf.manager(self._node(match["node"])))

    async def virtual_media(self, request: web.Request, match: Match) -> web.StreamResponse:
        return self._json(rf.virtual_media_collection(self._node(match["node"])))

    async def virtual_cd(self, request: web.Request, match: Match) -> web.StreamResponse:
        return self._json(rf.virtual_cd(self._node(match["node"])))

    async def chassis_collection(self, request: web.Request, _: Match) -> web.StreamResponse:
        return self._json(collection("ChassisCollection", "/redfish/v1/Chassis", "Chassis",
                                        [f"/redfish/v1/Chassis/{n}" for n in self.controllers]))

    async def chassis(self, request: web.Request, match: Match) -> web.StreamResponse:
        return self._json(rf.chassis(self._node(match["node"])))

    # ---- actions and changes -------------------------------------------------------------
    async def reset(self, request: web.Request, match: Match) -> web.StreamResponse:
        controller = self._node(match["node"])
        body = await self._body(request)
        reset_type = body.get("ResetType")
        if reset_type is None:
            raise RedfishError(400, "ResetType is required.", "ActionParameterMissing",
                               ("ComputerSystem.Reset", "ResetType"))
        allowed = rf.reset_types(controller)
        if reset_type not in allowed:
            raise RedfishError(400, f"ResetType {reset_type!r} is not one of {allowed}.",
                               "ActionParameterValueNotInList",
                               (str(reset_type), "ResetType", "ComputerSystem.Reset"))
        controller.request(rf.RESET_TYPES[reset_type], source=f"Redfish {request.remote}")
        return web.Response(status=204)

    async def insert_media(self, request: web.Request, match: Match) -> web.StreamResponse:
        controller = self._node(match["node"])
        body = await self._body(request)
        image = body.get("Image")
        if not isinstance(image, str) or not image:
            raise RedfishError(400, "Image (the URL of a CD image) is required.",
                               "ActionParameterMissing", ("VirtualMedia.InsertMedia", "Image"))
        for key in ("Inserted", "WriteProtected"):
            if body.get(key, True) is not True:
                raise RedfishError(400, f"{key} must be true: the virtual CD is read-only and "
                                   "inserted by this action.", "ActionParameterValueNotInList",
                                   (json.dumps(body[key]), key, "VirtualMedia.InsertMedia"))
        await controller.insert_media(image)
        return web.Response(status=204)

    async def eject_media(self, request: web.Request, match: Match) -> web.StreamResponse:
        await self._node(match["node"]).eject_media()
        return web.Response(status=204)

    async def patch_virtual_cd(self, request: web.Request, match: Match) -> web.StreamResponse:
        """Older clients insert and eject by PATCHing Image and Inserted."""
        controller = self._node(match["node"])
        body = await self._body(request)
        unknown = set(body) - {"Image", "Inserted", "WriteProtected"}
        if unknown:
            raise RedfishError(400, f"Property {sorted(unknown)[0]} cannot be changed.",
                               "PropertyNotWritable", (sorted(unknown)[0],))
        if body.get("Inserted") is False or body.get("Image", "") is None:
            await controller.eject_media()
        elif isinstance(body.get("Image"), str) and body["Image"]:
            await controller.insert_media(body["Image"])
        return self._json(rf.virtual_cd(controller))

    async def patch_system(self, request: web.Request, match: Match) -> web.StreamResponse:
        controller = self._node(match["node"])
        resource = rf.system(controller)
        if_match = request.headers.get("If-Match")
        if if_match and if_match not in ("*", self._json(resource).headers["ETag"]):
            raise RedfishError(412, "The resource changed since it was read (ETag).",
                               "PreconditionFailed", (request.path,))
        body = await self._body(request)
        writable(body, resource, {"Boot", *rf.INDICATOR})
        indicator = rf.patched_indicator(body)
        override = controller.override
        if "Boot" in body:
            boot = body["Boot"]
            if not isinstance(boot, dict):
                raise RedfishError(400, "Boot must be an object.", "PropertyValueTypeError",
                                   (json.dumps(boot), "Boot"))
            override = rf.patched_boot_override(override, boot)
        controller.set_boot_override(override)
        if indicator is not None:
            controller.platform.set_indicator(indicator)
        return self._json(rf.system(controller))

    async def patch_chassis(self, request: web.Request, match: Match) -> web.StreamResponse:
        controller = self._node(match["node"])
        body = await self._body(request)
        writable(body, rf.chassis(controller), set(rf.INDICATOR))
        indicator = rf.patched_indicator(body)
        if indicator is not None:
            controller.platform.set_indicator(indicator)
        return self._json(rf.chassis(controller))
