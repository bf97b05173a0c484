"""The EventService: node events (power on and off, boot override changes) as Redfish events,
pushed to subscriptions (POST to each subscriber's Destination) and streamed as Server-Sent
Events (`ServerSentEventUri`). Messages are from DMTF's ResourceEvent registry
(ResourcePoweredOn, ResourcePoweredOff, ResourceChanged). Subscriptions live as long as the BMC
process; a delivery that fails is retried a few times, then dropped (and logged once)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import json
import logging
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from quintupleo.bmc.events import EventBus, NodeEvent
from quintupleo.bmc.redfish.errors import RedfishError
from quintupleo.bmc.redfish.odata import ROOT, collection, link, odata, read_body, reply

log = logging.getLogger(__name__)

SERVICE = f"{ROOT}/EventService"
SUBSCRIPTIONS = f"{SERVICE}/Subscriptions"
SSE = f"{SERVICE}/SSE"
RETRIES, RETRY_INTERVAL = 3, 5
MAX_SUBSCRIPTIONS = 32
MESSAGES = {"power on": ("ResourceEvent.1.3.ResourcePoweredOn", "The resource powered on."),
            "power off": ("ResourceEvent.1.3.ResourcePoweredOff", "The resource powered off."),
            "boot override": ("ResourceEvent.1.3.ResourceChanged",
                              "One or more resource properties have changed.")}
Match = dict[str, str]


@dataclass
class Subscription:
    id: str
    destination: str
    context: str


def event_body(event: NodeEvent, context: str = "") -> dict[str, Any]:
    message_id, message = MESSAGES[event.kind]
    stamp = datetime.datetime.fromtimestamp(event.time, datetime.UTC).isoformat()
    return {"@odata.type": "#Event.v1_10_0.Event", "Id": str(event.id), "Name": "Node event",
            "Context": context,
            "Events": [{"EventId": str(event.id), "EventTimestamp": stamp, "Severity": "OK",
                        "MessageSeverity": "OK", "MessageId": message_id,
                        "Message": message + (f" ({event.detail})" if event.detail else ""),
                        "OriginOfCondition": link(f"{ROOT}/Systems/{event.node}")}]}


class EventHandlers:
    def __init__(self, bus: EventBus) -> None:
        self.subscriptions: dict[str, Subscription] = {}
        self._ids = itertools.count(1)
        self._client: aiohttp.ClientSession | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._streams: set[asyncio.Task[Any]] = set()
        bus.listen(self._push)
        self._bus = bus

    def routes(self) -> dict[str, dict[str, Any]]:
        return {SERVICE: {"GET": self.service},
                SUBSCRIPTIONS: {"GET": self.list, "POST": self.subscribe},
                f"{SUBSCRIPTIONS}/(?P<id>[^/]+)": {"GET": self.get, "DELETE": self.delete},
                SSE: {"GET": self.stream}}

    async def service(self, request: web.Request, _: Match) -> web.StreamResponse:
        return reply(odata("EventService.v1_10_0.EventService", SERVICE, Id="EventService",
                           Name="Event Service", ServiceEnabled=True,
                           DeliveryRetryAttempts=RETRIES,
                           DeliveryRetryIntervalSeconds=RETRY_INTERVAL,
                           EventFormatTypes=["Event"], RegistryPrefixes=["ResourceEvent"],
                           ServerSentEventUri=SSE, Subscriptions=link(SUBSCRIPTIONS),
                           Status={"State": "Enabled", "Health": "OK"}))

    async def list(self, request: web.Request, _: Match) -> web.StreamResponse:
        return reply(collection("EventDestinationCollection", SUBSCRIPTIONS, "Subscriptions",
                                [f"{SUBSCRIPTIONS}/{i}" for i in self.subscriptions]))

    def _find(self, subscription_id: str) -> Subscription:
        found = self.subscriptions.get(subscription_id)
        if found is None:
            raise RedfishError(404, f"No subscription {subscription_id}.", "ResourceNotFound",
                               ("EventDestination", subscription_id))
        return found

    @staticmethod
    def _resource(sub: Subscription) -> dict[str, Any]:
        return odata("EventDestination.v1_15_0.EventDestination", f"{SUBSCRIPTIONS}/{sub.id}",
                     Id=sub.id, Name="Event subscription", Destination=sub.destination,
                     Context=sub.context, Protocol="Redfish", SubscriptionType="RedfishEvent",
                     EventFormatType="Event")

    async def get(self, request: web.Request, match: Match) -> web.StreamResponse:
        return reply(self._resource(self._find(match["id"])))

    async def subscribe(self, request: web.Request, _: Match) -> web.StreamResponse:
        body = await read_body(request)
        destination, context = body.get("Destination"), body.get("Context", "")
        if not isinstance(destination, str) or not destination.startswith(
                ("http://", "https://")):
            raise RedfishError(400, "Destination (an http or https URL) is required.",
                               "PropertyMissing", ("Destination",))
        if body.get("Protocol", "Redfish") != "Redfish" or not isinstance(context, str):
            raise RedfishError(400, "Protocol must be Redfish and Context a string.",
                               "PropertyValueNotInList", (json.dumps(body.get("Protocol")),
                                                          "Protocol"))
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise RedfishError(400, f"{MAX_SUBSCRIPTIONS} subscriptions at most.",
                               "CreateLimitReachedForResource")
        sub = Subscription(str(next(self._ids)), destination, context)
        self.subscriptions[sub.id] = sub
        log.info("redfish: event subscription %s for %s", sub.id, destination)
        return reply(self._resource(sub), 201, {"Location": f"{SUBSCRIPTIONS}/{sub.id}"})

    async def delete(self, request: web.Request, match: Match) -> web.StreamResponse:
        del self.subscriptions[self._find(match["id"]).id]
        return web.Response(status=204)

    async def stream(self, request: web.Request, _: Match) -> web.StreamResponse:
        """Server-Sent Events: one `data:` line of an Event per node event, until the client
        goes away."""
        queue: asyncio.Queue[NodeEvent] = asyncio.Queue(maxsize=1024)
        stop = self._bus.listen(lambda e: None if queue.full() else queue.put_nowait(e))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        try:
            await response.prepare(request)
            while True:
                event = await queue.get()
                await response.write(f"id: {event.id}\ndata: "
                                     f"{json.dumps(event_body(event))}\n\n".encode())
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            stop()
            self._streams.discard(task)
        return response

    def _push(self, event: NodeEvent) -> None:
        for sub in self.subscriptions.values():
            task = asyncio.get_running_loop().create_task(self._deliver(sub, event))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, sub: Subscription, event: NodeEvent) -> None:
        if self._client is None:
            # subscribers' certificates are not checked: test listeners are self-signed
            insecure = ssl.create_default_context()
            insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
            self._client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=insecure),
                timeout=aiohttp.ClientTimeout(total=10))
        for attempt in range(RETRIES + 1):
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                async with self._client.post(sub.destination,
                                             json=event_body(event, sub.context)) as answer:
                    if answer.status < 300:
                        return
            if attempt < RETRIES:
                await asyncio.sleep(RETRY_INTERVAL)
        log.warning("redfish: event %d not delivered to subscription %s", event.id, sub.id)

    async def close(self) -> None:
        """At shutdown: end the event streams (they would hold it up) and the deliveries."""
        for task in [*self._deliveries, *self._streams]:
            task.cancel()
        if self._client is not None:
            await self._client.close()
