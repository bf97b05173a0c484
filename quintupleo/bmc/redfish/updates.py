"""The UpdateService (`SimpleUpdate`, and each node's `FirmwareInventory`: its BIOS and its
BMC) and the TaskService whose tasks report an update's progress.

A SimpleUpdate answers 202 with the task monitor in `Location`; the monitor answers 202 (the
Task, `Retry-After`) while the task runs and 200 (the Task) once it has ended, which is how
sushy and Ironic follow a task. The Task itself (`TaskService/Tasks/N`) always answers 200.
One service serves many nodes, so an update names its node in `Targets` (a system, its
manager or one of its firmware inventory entries) unless the service has only one."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from quintupleo.bmc.controller import NodeController
from quintupleo.bmc.firmware import Updates
from quintupleo.bmc.redfish.errors import RedfishError
from quintupleo.bmc.redfish.odata import ROOT, collection, link, odata, read_body, reply
from quintupleo.bmc.tasks import Task, TaskList

Match = dict[str, str]
Reply = web.StreamResponse
ENABLED = {"State": "Enabled", "Health": "OK"}
SERVICE = f"{ROOT}/UpdateService"
INVENTORY = f"{SERVICE}/FirmwareInventory"
TASKS = f"{ROOT}/TaskService"
MONITORS = f"{TASKS}/TaskMonitors"
COMPONENTS = ("BIOS", "BMC")
TARGET = re.compile(rf"{ROOT}/(?:Systems|Managers)/(?P<node>[^/]+)|"
                    rf"{INVENTORY}/(?P<entry>[^/]+)-(?P<component>BIOS|BMC)")


def _when(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat()


def update_service() -> dict[str, Any]:
    return odata("UpdateService.v1_17_0.UpdateService", SERVICE, Id="UpdateService",
                 Name="Update service", ServiceEnabled=True, Status=ENABLED,
                 FirmwareInventory=link(INVENTORY),
                 Actions={"#UpdateService.SimpleUpdate": {
                     "target": f"{SERVICE}/Actions/UpdateService.SimpleUpdate",
                     "TransferProtocol@Redfish.AllowableValues": ["HTTP", "HTTPS"]}})


def firmware_entry(controller: NodeController, component: str) -> dict[str, Any]:
    node, platform = controller.info.id, controller.platform
    bios = component == "BIOS"
    return odata("SoftwareInventory.v1_13_0.SoftwareInventory",
                 f"{INVENTORY}/{node}-{component}", Id=f"{node}-{component}",
                 Name=f"{'BIOS' if bios else 'BMC firmware'} of {controller.info.name}",
                 SoftwareId=component, Updateable=True, Status=ENABLED,
                 Version=(platform.bios_version or None) if bios else platform.bmc_version,
                 RelatedItem=[link(f"{ROOT}/{'Systems' if bios else 'Managers'}/{node}")])


def task_resource(task: Task) -> dict[str, Any]:
    last = len(task.messages) - 1
    ended = {"Completed": "TaskCompletedOK", "Exception": "TaskAborted"}.get(task.state)
    messages = [{"MessageId": "TaskEvent.1.0." + (ended if i == last and ended
                                                   else "TaskProgressChanged"),
                 "Message": text, "MessageSeverity": task.status if i == last else "OK"}
                for i, text in enumerate(task.messages)]
    return odata("Task.v1_7_4.Task", f"{TASKS}/Tasks/{task.id}", Id=task.id, Name=task.name,
                 TaskState=task.state, TaskStatus=task.status, PercentComplete=task.percent,
                 StartTime=_when(task.started),
                 **({"EndTime": _when(task.ended)} if task.ended else {}),
                 TaskMonitor=f"{MONITORS}/{task.id}", Messages=messages)


class UpdateHandlers:
    """Update and task handlers over all nodes (`controllers`)."""

    def __init__(self, controllers: dict[str, NodeController], tasks: TaskList) -> None:
        self.controllers, self.tasks = controllers, tasks
        self.updates = Updates(tasks)

    def routes(self) -> dict[str, dict[str, Any]]:
        return {
            SERVICE: {"GET": self.service},
            rf"{SERVICE}/Actions/UpdateService\.SimpleUpdate": {"POST": self.simple_update},
            INVENTORY: {"GET": self.inventory},
            rf"{INVENTORY}/(?P<node>[^/]+)-(?P<component>BIOS|BMC)": {"GET": self.entry},
            TASKS: {"GET": self.task_service},
            f"{TASKS}/Tasks": {"GET": self.task_list},
            rf"{TASKS}/Tasks/(?P<id>\d+)": {"GET": self.task},
            rf"{MONITORS}/(?P<id>\d+)": {"GET": self.monitor},
        }

    def _controller(self, node: str) -> NodeController:
        controller = self.controllers.get(node)
        if controller is None:
            raise RedfishError(404, f"No firmware of {node}.", "ResourceNotFound",
                               ("SoftwareInventory", node))
        return controller

    def _task(self, task_id: str) -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            raise RedfishError(404, f"No task {task_id} (tasks are kept while the BMC runs).",
                               "ResourceNotFound", ("Task", task_id))
        return task

    async def service(self, request: web.Request, _: Match) -> Reply:
        return reply(update_service())

    async def inventory(self, request: web.Request, _: Match) -> Reply:
        return reply(collection("SoftwareInventoryCollection", INVENTORY, "Firmware inventory",
                                [f"{INVENTORY}/{n}-{c}" for n in self.controllers
                                 for c in COMPONENTS]))

    async def entry(self, request: web.Request, match: Match) -> Reply:
        return reply(firmware_entry(self._controller(match["node"]), match["component"]))

    async def simple_update(self, request: web.Request, _: Match) -> Reply:
        body = await read_body(request)
        uri, protocol = body.get("ImageURI"), body.get("TransferProtocol")
        if not isinstance(uri, str) or not uri:
            raise RedfishError(400, "ImageURI is required.", "ActionParameterMissing",
                               ("UpdateService.SimpleUpdate", "ImageURI"))
        if protocol is not None and protocol not in ("HTTP", "HTTPS"):
            raise RedfishError(400, "TransferProtocol must be HTTP or HTTPS.",
                               "ActionParameterValueNotInList",
                               (str(protocol), "TransferProtocol", "UpdateService.SimpleUpdate"))
        controller = self._target(body.get("Targets"))
        task = self.updates.start(controller.info.id, controller.platform, uri)   # 400: name
        return web.Response(status=202, headers={"Location": f"{MONITORS}/{task.id}",
                                                 "Retry-After": "1"})

    def _target(self, targets: Any) -> NodeController:
        if targets is None or targets == []:
            if len(self.controllers) != 1:
                raise RedfishError(400, f"This service has {len(self.controllers)} systems: "
                                   "name one in Targets.", "ActionParameterMissing",
                                   ("UpdateService.SimpleUpdate", "Targets"))
            return next(iter(self.controllers.values()))
        if not isinstance(targets, list) or len(targets) != 1 or not isinstance(targets[0], str):
            raise RedfishError(400, "Targets must list one system, manager or firmware entry.",
                               "ActionParameterValueFormatError",
                               (json.dumps(targets), "Targets", "UpdateService.SimpleUpdate"))
        match = TARGET.fullmatch(targets[0].rstrip("/"))
        node = match and (match["node"] or match["entry"])
        if not node or node not in self.controllers:
            raise RedfishError(400, f"Target {targets[0]} is no system of this service.",
                               "ActionParameterValueNotInList",
                               (targets[0], "Targets", "UpdateService.SimpleUpdate"))
        return self.controllers[node]

    async def task_service(self, request: web.Request, _: Match) -> Reply:
        return reply(odata("TaskService.v1_3_0.TaskService", TASKS, Id="TaskService",
                           Name="Task service", ServiceEnabled=True, Status=ENABLED,
                           CompletedTaskOverWritePolicy="Oldest",
                           LifeCycleEventOnTaskStateChange=False,
                           DateTime=_when(datetime.now(UTC).timestamp()),
                           Tasks=link(f"{TASKS}/Tasks")))

    async def task_list(self, request: web.Request, _: Match) -> Reply:
        return reply(collection("TaskCollection", f"{TASKS}/Tasks", "Tasks",
                                [f"{TASKS}/Tasks/{t.id}" for t in self.tasks]))

    async def task(self, request: web.Request, match: Match) -> Reply:
        return reply(task_resource(self._task(match["id"])))

    async def monitor(self, request: web.Request, match: Match) -> Reply:
        task = self._task(match["id"])
        if task.running:
            return reply(task_resource(task), 202, {"Location": f"{MONITORS}/{task.id}",
                                                    "Retry-After": "1"})
        return reply(task_resource(task))

    async def close(self) -> None:
        await self.updates.close()
